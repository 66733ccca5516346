/**
 * What a patient-context caller may see of an AuditEvent (pure): the event as stored, reduced to the caller's own
 * compartment. Redaction happens on read only; the stored event, and so the hash chain (chain.ts), never changes.
 *
 * Kept: type, subtype, action, times, outcome, agents and source (who opened my record, from where), the request-id
 * entity, the caller's own patient entity, its own studies (by UID), and, when the event concerns no other patient,
 * its other entities (the resource read, the order, the token). Removed: every other patient entity, every patient
 * named only for auditors (chain.ts `REQUESTED_DETAIL`), studies of others, and, in the base64 query, every value
 * that is not one of the caller's own identifiers unless its parameter never identifies anyone (`_count`, `modality`...).
 * A changed event carries the security label REDACTED (https://terminology.hl7.org/CodeSystem-v3-ObservationValue.html,
 * https://hl7.org/fhir/R4/security-labels.html).
 *
 * query.ts applies the same rules to searches ({@link entitySurvives}), so that a patient's search only matches what
 * it would then see: its totals reveal nothing that the redacted events do not.
 */
import type { AuditEvent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import { auditIndex, REQUESTED_DETAIL } from './chain.ts';
import { ENTITY_ROLE, IDENTIFIER_TYPE } from './codes.ts';

/** The identifiers of the caller's own patient(s): what may stay visible. */
export interface OwnIdentifiers {
  readonly patientIds: readonly string[];
  readonly mrns: readonly string[];
  readonly studyUids: readonly string[];
  readonly accessions: readonly string[];
  readonly orderIds: readonly string[];
}

export const REDACTED_LABEL: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue',
  code: 'REDACTED',
  display: 'redacted',
};

/** What replaces a removed value inside a query. */
export const REDACTED_VALUE = 'REDACTED';

/** Query parameters whose values never identify a patient, kept as they are (all others are checked value by value). */
const SAFE_PARAMS = new Set([
  '_count',
  '_offset',
  '_sort',
  '_format',
  '_summary',
  '_elements',
  '_include',
  '_revinclude',
  '_total',
  '_lastUpdated',
  '_since',
  'limit',
  'offset',
  'includefield',
  'fuzzymatching',
  'modality',
  'ModalitiesInStudy',
  '00080061',
  'StudyDate',
  '00080020',
  'date',
  'status',
  'category',
  'code',
  'grant_type',
  'scope',
]);

/** Entity descriptions this server writes that name nobody (resource types, 'QIDO-RS', 'token request'). */
const SAFE_DESCRIPTION = /^(?:[A-Z][A-Za-z]{1,63}|QIDO-RS|token request)$/;

/** A DICOM UID (PS3.5 §9.1), possibly as `urn:oid:`. */
export const UID_LIKE = /^(?:urn:oid:)?[0-9]+(?:\.[0-9]+)+$/;

/** DICOMweb path keywords (PS3.18 §10.4) whose next segment is a UID or number. */
const DICOM_CONTAINERS = new Set(['studies', 'series', 'instances', 'frames']);
/** Path keywords followed by nothing identifying, or by their own keyword. */
const PATH_KEYWORDS = new Set(['metadata', 'rendered', 'thumbnail', 'bulkdata', '_search', 'dicom-web', 'fhir']);
const FHIR_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
/** A parameter name: letters, digits, `_`, `-`, `.`, `:` (modifiers), or a DICOM tag. */
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$|^[0-9A-Fa-f]{8}$/;

/** The bare form of a value: no `Type/` path before a Patient id, no `urn:oid:`, no `system|`. */
function bare(value: string): string {
  return value
    .replace(/^urn:oid:/, '')
    .replace(/^(?:.*\/)?Patient\//, '')
    .replace(/^[^|]*\|/, '');
}

function ownSet(own: OwnIdentifiers): Set<string> {
  return new Set([...own.patientIds, ...own.mrns, ...own.studyUids, ...own.accessions, ...own.orderIds]);
}

const isOwn = (value: string, set: Set<string>): boolean => set.has(value) || set.has(bare(value));

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * A path with every identifier that is not the caller's own replaced. Identifiers are the segments after a FHIR type,
 * a DICOMweb container (`studies/{uid}`) or `_history`; below one of the caller's own studies, the series and
 * instance UIDs are the caller's too.
 */
function scrubPath(path: string, set: Set<string>): string {
  let expectId = false;
  let afterHistory = false;
  let ownStudy = false;
  return path
    .split('/')
    .map((seg) => {
      if (seg === '') return seg;
      const value = decode(seg);
      if (!expectId && value !== undefined) {
        if (DICOM_CONTAINERS.has(value) || value === '_history' || FHIR_TYPE.test(value)) {
          expectId = true;
          afterHistory = value === '_history';
          return seg;
        }
        if (PATH_KEYWORDS.has(value) || value.startsWith('$')) return seg;
      }
      const wasStudy = expectId;
      const version = afterHistory;
      expectId = false;
      afterHistory = false;
      if (value === undefined) return REDACTED_VALUE;
      if (version && /^[0-9]{1,9}$/.test(value)) return seg; // a version id names nobody
      if (isOwn(value, set)) {
        if (wasStudy && UID_LIKE.test(value) && set.has(bare(value))) ownStudy = true;
        return seg;
      }
      return ownStudy && UID_LIKE.test(value) ? seg : REDACTED_VALUE;
    })
    .join('/');
}

/** A raw `path?query` (or a bare query) with every value not the caller's own, nor under a safe parameter, replaced. */
export function scrubQuery(raw: string, own: OwnIdentifiers): string {
  const set = ownSet(own);
  const q = raw.indexOf('?');
  const bareQuery = q < 0 && raw.includes('=');
  const path = q < 0 ? (bareQuery ? '' : raw) : raw.slice(0, q);
  if (q < 0 && !bareQuery) return scrubPath(path, set);
  const params = raw
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = decode(eq < 0 ? pair : pair.slice(0, eq)) ?? '';
      if (!PARAM_NAME.test(key)) return pair === '' ? pair : REDACTED_VALUE;
      if (eq < 0) return SAFE_PARAMS.has(key) ? pair : REDACTED_VALUE;
      if (SAFE_PARAMS.has(key.split(':')[0] ?? '')) return pair;
      const value = decode(pair.slice(eq + 1));
      if (value === undefined) return `${pair.slice(0, eq)}=${REDACTED_VALUE}`;
      const kept = value.split(',').map((v) => (isOwn(v.trim(), set) ? encodeURIComponent(v) : REDACTED_VALUE));
      return `${pair.slice(0, eq)}=${kept.join(',')}`;
    });
  return `${bareQuery ? '' : `${scrubPath(path, set)}?`}${params.join('&')}`;
}

const isRequestId = (e: AuditEventEntity) => e.type?.code === 'XrequestId';
const isRequested = (e: AuditEventEntity) => (e.detail ?? []).some((d) => d.type === REQUESTED_DETAIL.type);
const isStudy = (e: AuditEventEntity) =>
  e.what?.identifier?.type?.coding?.some((c) => c.code === IDENTIFIER_TYPE.studyInstanceUid.code) === true;
const PATIENT_REF = /^(?:.*\/)?Patient\/([^/]+)$/;

/** Whether the event concerns only the caller's own patient(s) (its patient index holds no one else). */
export function concernsOnly(event: AuditEvent, own: OwnIdentifiers): boolean {
  const mine = new Set(own.patientIds);
  return auditIndex(event).patientIds.every((p) => mine.has(p));
}

/** One entity as a patient-context caller sees it, or undefined when it is removed. */
function redactEntity(e: AuditEventEntity, own: OwnIdentifiers, only: boolean): AuditEventEntity | undefined {
  if (isRequestId(e)) return e;
  if (isRequested(e)) return undefined;
  const ref = e.what?.reference;
  const patient = ref ? PATIENT_REF.exec(ref)?.[1] : undefined;
  if (patient !== undefined) return own.patientIds.includes(patient) ? e : undefined;
  if (isStudy(e)) {
    const uid = bare(e.what?.identifier?.value ?? '');
    return own.studyUids.includes(uid) ? e : undefined;
  }
  if (e.query !== undefined || e.role?.code === ENTITY_ROLE.query.code) {
    const out: AuditEventEntity = { ...e };
    if (e.query !== undefined) {
      const raw = Buffer.from(e.query, 'base64').toString('utf8');
      out.query = Buffer.from(scrubQuery(raw, own), 'utf8').toString('base64');
    }
    if (e.description !== undefined && !SAFE_DESCRIPTION.test(e.description)) delete out.description;
    return out;
  }
  if (!only) return undefined;
  if (e.description !== undefined && !SAFE_DESCRIPTION.test(e.description)) {
    const { description: _d, ...rest } = e;
    return rest;
  }
  return e;
}

/** The event as a patient-context caller with these identifiers may see it (the input is never changed). */
export function redactForPatient(event: AuditEvent, own: OwnIdentifiers): AuditEvent {
  const only = concernsOnly(event, own);
  const entity: AuditEventEntity[] = [];
  let changed = false;
  for (const e of event.entity ?? []) {
    const kept = redactEntity(e, own, only);
    if (kept) entity.push(kept);
    if (kept === undefined || JSON.stringify(kept) !== JSON.stringify(e)) changed = true;
  }
  if (!changed) return event;
  const meta = { ...(event.meta ?? {}), security: [...(event.meta?.security ?? []), REDACTED_LABEL] };
  const out: AuditEvent = { ...event, meta };
  if (entity.length) out.entity = entity;
  else delete out.entity;
  return out;
}

/**
 * Whether an `entity` search value can match something a patient-context caller sees, and under which condition:
 * 'always' (its own patient or study), 'only' (when the event concerns only its own patients: a resource, an order,
 * a token), or 'never' (another patient, a study not its own).
 */
export function entitySurvives(value: string, own: OwnIdentifiers): 'always' | 'only' | 'never' {
  const patient = PATIENT_REF.exec(value)?.[1];
  if (patient !== undefined) return own.patientIds.includes(patient) ? 'always' : 'never';
  if (UID_LIKE.test(value)) return own.studyUids.includes(bare(value)) ? 'always' : 'never';
  return 'only';
}
