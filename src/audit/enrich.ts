/**
 * Finds the patients an allowed (2xx) response involved, for the patient entities of its AuditEvent, without help
 * from the handler: from the FHIR JSON that was sent, or, for DICOMweb, from the studies and MRNs the request named,
 * looked up in the EHR's study links and kept only when inside the caller's patient filter. Never used for
 * failures: a denied or failed request records no patient (balp.ts).
 *
 * Also finds the patients any request named (by id, study UID or MRN) whatever it was shown: recorded as requested
 * patients, searchable by auditors only (balp.ts `requestedPatientEntity`).
 */
import type { Resource } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import type { Access } from '../auth/access.ts';
import { isFhirType, RESOURCES } from '../fhir/registry.ts';
import type { AuditDescription } from './context.ts';

const PATIENT_REF = /^(?:.*\/)?Patient\/([A-Za-z0-9.-]{1,64})$/;

function refId(value: unknown): string | undefined {
  const ref = (value as { reference?: unknown } | undefined)?.reference;
  return typeof ref === 'string' ? PATIENT_REF.exec(ref)?.[1] : undefined;
}

/** Patient ids of a FHIR resource: itself when a Patient, else its `subject`/`patient` references. */
export function patientsOfResource(r: Resource | undefined): string[] {
  if (!r || typeof r !== 'object') return [];
  if (r.resourceType === 'Patient') return r.id ? [r.id] : [];
  const rec = r as unknown as Record<string, unknown>;
  const out: string[] = [];
  for (const field of ['subject', 'patient']) {
    const v = rec[field];
    for (const item of Array.isArray(v) ? v : [v]) {
      const id = refId(item);
      if (id) out.push(id);
    }
  }
  return out;
}

/** Patient ids in a FHIR JSON response body (a resource or a Bundle of them). Unparseable bodies give none. */
export function patientsInFhirJson(body: string): string[] {
  let parsed: Resource;
  try {
    parsed = JSON.parse(body) as Resource;
  } catch {
    return [];
  }
  if (parsed?.resourceType === 'Bundle') {
    return [...new Set((parsed.entry ?? []).flatMap((e) => patientsOfResource(e.resource)))].sort();
  }
  return [...new Set(patientsOfResource(parsed))].sort();
}

const UIDS = /^[0-9.]{1,64}(,[0-9.]{1,64})*$/;

/**
 * Whether a value taken from a request may be looked up in PostgreSQL: text it can hold (no NUL, no unpaired
 * surrogate) of a length an identifier can have. Anything else names no patient, and must not fail the audit.
 */
export function lookupable(v: string): boolean {
  return v.length > 0 && v.length <= 256 && !v.includes('\u0000') && v.isWellFormed();
}

/** Study UIDs and MRNs a DICOMweb request names (path and QIDO matching keys). Pure. */
export function dicomKeys(d: AuditDescription, url: string): { studyUids: string[]; mrns: string[] } {
  const studyUids = new Set<string>();
  const mrns = new Set<string>();
  if (d.kind === 'dicom-query' || d.kind === 'dicom-retrieve' || d.kind === 'dicom-store') {
    for (const s of d.input.studies ?? []) studyUids.add(s.studyUid);
  }
  const q = url.indexOf('?');
  for (const [k, v] of new URLSearchParams(q < 0 ? '' : url.slice(q + 1))) {
    if ((k === 'StudyInstanceUID' || k === '0020000D') && UIDS.test(v)) for (const u of v.split(',')) studyUids.add(u);
    if ((k === 'PatientID' || k === '00100020') && v && !/[*?\\]/.test(v)) {
      for (const mrn of v.split(',')) if (lookupable(mrn)) mrns.add(mrn);
    }
  }
  return { studyUids: [...studyUids], mrns: [...mrns] };
}

/** The study → patients lookup of the DICOMweb study index (src/dicomweb/access/study-index.ts `StudyIndex`, cached). */
export interface StudyPatientsLookup {
  patientsOfStudy(studyUid: string): Promise<readonly string[]>;
}

/**
 * The EHR patients linked to these studies or MRNs, whoever asks. With the DICOMweb study index the study links come
 * from its cache (which the access decision has usually just filled, and which link changes invalidate); without it,
 * from one query.
 */
export async function dicomNamedPatients(
  db: Pick<CommonQueryMethods, 'anyFirst'>,
  keys: { studyUids: string[]; mrns: string[] },
  studyIndex?: StudyPatientsLookup,
): Promise<string[]> {
  const found = new Set<string>();
  if (keys.studyUids.length && studyIndex) {
    const linked = await Promise.all(keys.studyUids.map((uid) => studyIndex.patientsOfStudy(uid)));
    for (const ids of linked) for (const id of ids) found.add(String(id));
  } else if (keys.studyUids.length) {
    const rows = await db.anyFirst(sql.unsafe`
      SELECT DISTINCT patient_id FROM imaging_studies
       WHERE study_instance_uid = ANY(${sql.array(keys.studyUids, 'text')}) AND patient_id IS NOT NULL AND NOT deleted`);
    for (const r of rows) found.add(String(r));
  }
  if (keys.mrns.length) {
    const rows = await db.anyFirst(sql.unsafe`
      SELECT id FROM patients WHERE mrn = ANY(${sql.array(keys.mrns, 'text')}) AND NOT deleted`);
    for (const r of rows) found.add(String(r));
  }
  return [...found].sort();
}

/** The caller's own patient and the patients named (see {@link dicomNamedPatients}), kept when the caller may see them. */
export function dicomAllowedPatients(access: Access | undefined, named: readonly string[]): string[] {
  if (!access) return [];
  const found = new Set(named);
  if (access.patientContext) found.add(access.patientContext);
  const filter = access.patientFilter('search', 'ImagingStudy');
  return [...found].filter((id) => filter.all || filter.patientIds.includes(id)).sort();
}

/** The EHR patients linked to these studies or MRNs, limited to the caller's patient filter for imaging. */
export async function dicomPatients(
  db: Pick<CommonQueryMethods, 'anyFirst'>,
  access: Access | undefined,
  keys: { studyUids: string[]; mrns: string[] },
  studyIndex?: StudyPatientsLookup,
): Promise<string[]> {
  return dicomAllowedPatients(access, await dicomNamedPatients(db, keys, studyIndex));
}

const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;
/** Search parameters whose values are patient references (https://hl7.org/fhir/R4/compartmentdefinition-patient.html). */
const PATIENT_PARAMS = new Set(['patient', 'subject', 'Patient']);
/** At most this many named patients are recorded per event (the raw query keeps the rest). */
export const MAX_NAMED = 100;

/**
 * What a FHIR request names of patients, from its URL alone (pure): patient ids (`Patient/{id}` paths, `patient=`,
 * `subject=`, a Patient search's `_id`), MRNs (a Patient search's `identifier`), and the `Type/id` it addresses.
 */
export function fhirNamed(url: string): {
  patientIds: string[];
  mrns: string[];
  resource?: { type: string; id: string };
} {
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).split('/').filter(Boolean);
  const parts = path[0] === 'fhir' ? path.slice(1) : path;
  const [type, rawId] = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const ids = new Set<string>();
  const mrns = new Set<string>();
  let resource: { type: string; id: string } | undefined;
  if (type && rawId && FHIR_ID.test(rawId) && !rawId.startsWith('_')) {
    if (type === 'Patient') ids.add(rawId);
    else if (/^[A-Z][A-Za-z]{1,63}$/.test(type)) resource = { type, id: rawId };
  }
  for (const [k, v] of new URLSearchParams(q < 0 ? '' : url.slice(q + 1))) {
    const name = k.split(':')[0] ?? '';
    const values = v.split(',').map((x) => x.trim());
    if (PATIENT_PARAMS.has(name) || (type === 'Patient' && name === '_id')) {
      for (const x of values) {
        const id = x.replace(/^(?:.*\/)?Patient\//, '');
        if (FHIR_ID.test(id)) ids.add(id);
      }
    } else if (type === 'Patient' && name === 'identifier') {
      for (const x of values) {
        const value = x.slice(x.lastIndexOf('|') + 1);
        if (lookupable(value)) mrns.add(value);
      }
    }
  }
  const out = { patientIds: [...ids].slice(0, MAX_NAMED), mrns: [...mrns].slice(0, MAX_NAMED) };
  return resource ? { ...out, resource } : out;
}

/**
 * The patients a FHIR request named: {@link fhirNamed}, with MRNs looked up, and, when `lookupResource`, the patient
 * of the resource it addressed (for a refused or hidden read, where no response tells it).
 */
export async function fhirNamedPatients(
  db: Pick<CommonQueryMethods, 'anyFirst'>,
  url: string,
  lookupResource: boolean,
): Promise<string[]> {
  const named = fhirNamed(url);
  const found = new Set(named.patientIds);
  if (named.mrns.length) {
    const rows = await db.anyFirst(sql.unsafe`
      SELECT id FROM patients WHERE mrn = ANY(${sql.array(named.mrns, 'text')})`);
    for (const r of rows) found.add(String(r));
  }
  const r = named.resource;
  if (lookupResource && r && isFhirType(r.type) && r.type !== 'Patient') {
    const rows = await db.anyFirst(sql.unsafe`
      SELECT patient_id FROM ${sql.identifier([RESOURCES[r.type].table])} WHERE id = ${r.id} AND patient_id IS NOT NULL`);
    for (const p of rows) found.add(String(p));
  }
  return [...found].sort().slice(0, MAX_NAMED);
}
