import type { Endpoint, ImagingStudy, Patient, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import type { Access, PatientFilter } from '../auth/access.ts';
import type { DicomInstance } from './dicom-instance.ts';
import { mergeImagingStudy } from './imaging-study.ts';
import type { MatchLookup, OrderRecord, PatientRecord, StudyLink } from './matching.ts';
import { orderTransition } from './order-status.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * The EHR side of an upload (founding design, upload workflow steps 3, 4, 6 and 7): lookups for matching, and the
 * one transaction that links stored instances to their order and ImagingStudy. All FHIR reads and writes go through
 * the FHIR repository (history, search indexes, profiles); this module only knows the few methods below. Used by
 * STOW-RS and the upload API (`source` stow/upload) and reusable for C-STORE arrivals (`dimse`).
 */

interface Stored<T extends Resource = Resource> {
  resource: T;
}

/** The subset of the FHIR repository (src/fhir/repository.ts) used here; structural, so any repository fits. */
export interface FhirStore {
  findPatientByMrn(mrn: string): Promise<Stored | undefined>;
  findOrderByAccession(accession: string): Promise<Stored | undefined>;
  findImagingStudyByStudyUid(studyInstanceUid: string): Promise<Stored | undefined>;
  orderBridge(orderId: string): Promise<{ study_instance_uid?: string | null } | undefined>;
  read(type: 'Endpoint' | 'ServiceRequest', id: string): Promise<Stored>;
  update(
    type: 'ImagingStudy' | 'Endpoint',
    id: string,
    body: Resource,
    opts?: { orthancStudyId?: string },
  ): Promise<Stored>;
  linkOrderToStudy(
    orderId: string,
    link: {
      studyInstanceUid: string;
      orthancStudyId: string;
      numberOfImages: number;
      uploadedAt: Date;
      status?: string;
    },
  ): Promise<unknown>;
}

const refId = (ref: string | undefined, type: string): string | null =>
  ref?.startsWith(`${type}/`) ? ref.slice(type.length + 1) : null;

/**
 * Looks up what {@link decideMatch} needs for one instance; `studyLink` (e.g. {@link findStudyLink}) tells where the
 * study is linked regardless of what `store` lets the caller see.
 */
export async function lookupForMatch(
  store: FhirStore,
  inst: DicomInstance,
  studyLink?: (studyInstanceUid: string) => Promise<StudyLink | undefined>,
): Promise<MatchLookup> {
  const [p, o, s, link] = await Promise.all([
    store.findPatientByMrn(inst.patientId),
    inst.accessionNumber ? store.findOrderByAccession(inst.accessionNumber) : undefined,
    store.findImagingStudyByStudyUid(inst.studyInstanceUid),
    studyLink?.(inst.studyInstanceUid),
  ]);
  const pr = p?.resource as Patient | undefined;
  const patient: PatientRecord | undefined = pr?.id
    ? {
        id: pr.id,
        mrn: inst.patientId,
        demographics: {
          names: (pr.name ?? []).map((n) => ({ family: n.family, given: n.given })),
          birthDate: pr.birthDate,
          gender: pr.gender,
        },
      }
    : undefined;
  let order: OrderRecord | undefined;
  if (o?.resource.id) {
    const sr = o.resource as ServiceRequest;
    const bridge = await store.orderBridge(sr.id!);
    order = {
      id: sr.id!,
      accession: inst.accessionNumber!,
      patientId: refId(sr.subject?.reference, 'Patient'),
      status: sr.status,
      studyInstanceUid: bridge?.study_instance_uid ?? null,
    };
  }
  const study = s?.resource.id
    ? { id: s.resource.id, patientId: refId((s.resource as ImagingStudy).subject?.reference, 'Patient') }
    : undefined;
  return { patient, order, study, ...(link ? { studyLink: link } : {}) };
}

/**
 * Where a Study Instance UID is linked in the EHR (its live ImagingStudy's patient, the order carrying it), read
 * directly and without any caller's access restrictions; only used to refuse, never shown.
 */
export async function findStudyLink(
  conn: CommonQueryMethods,
  studyInstanceUid: string,
): Promise<StudyLink | undefined> {
  const row = (await conn.maybeOne(sql.unsafe`
    SELECT
      (SELECT s.patient_id FROM imaging_studies s WHERE s.study_instance_uid = ${studyInstanceUid} AND NOT s.deleted
         AND s.content->>'status' <> 'entered-in-error') AS study_patient,
      (SELECT o.patient_id FROM orders o WHERE o.study_instance_uid = ${studyInstanceUid} AND NOT o.deleted) AS order_patient,
      (SELECT o.id FROM orders o WHERE o.study_instance_uid = ${studyInstanceUid} AND NOT o.deleted) AS order_id`)) as {
    study_patient: string | null;
    order_patient: string | null;
    order_id: string | null;
  } | null;
  if (!row || (!row.study_patient && !row.order_id)) return undefined;
  return { patientId: row.study_patient ?? row.order_patient, orderId: row.order_id };
}

/**
 * The access the linking writes run with: the caller's agent (so audit names the uploader), allowed to read and
 * write orders, studies and the Endpoint of exactly the patients whose instances the caller was authorized to store.
 * The caller's own scopes were checked per instance before storing (0x0124); this does not widen them to other
 * patients, and avoids requiring ServiceRequest write scopes from a modality that may only store images.
 */
export function linkingAccess(caller: Access, patientIds: readonly string[]): Access {
  const types = new Set(['Patient', 'ServiceRequest', 'ImagingStudy', 'Endpoint']);
  const filter: PatientFilter = { all: false, patientIds: [...patientIds] };
  return {
    kind: caller.kind,
    agent: caller.agent,
    allows: (interaction, type) => types.has(type) && interaction !== 'delete',
    patientFilter: () => filter,
    restrictions: () => [],
  };
}

/**
 * The access the EHR match of an upload reads with (patient by MRN, order by accession, study by UID): the caller's
 * agent, reading Patient, ServiceRequest and ImagingStudy of exactly the patients it may create imaging for. Storing
 * imaging needs `create` on ImagingStudy (checked per instance before this lookup); it does not also need Patient and
 * ServiceRequest read scopes, which a viewer saving a report (`user/ImagingStudy.crs`) or a modality does not have.
 * A patient outside the caller's filter is not found, as before: the caller cannot learn whether an MRN exists.
 */
export function matchingAccess(caller: Access): Access {
  const types = new Set(['Patient', 'ServiceRequest', 'ImagingStudy']);
  return {
    kind: caller.kind,
    agent: caller.agent,
    allows: (interaction, type) =>
      types.has(type) &&
      (interaction === 'read' || interaction === 'search') &&
      caller.allows('create', 'ImagingStudy'),
    patientFilter: () => caller.patientFilter('create', 'ImagingStudy'),
    restrictions: (type) => caller.restrictions(type),
    ...(caller.patientContext !== undefined ? { patientContext: caller.patientContext } : {}),
  };
}

export interface StudyToRecord {
  studyInstanceUid: string;
  orthancStudyId: string;
  patientId: string;
  orderId: string;
  /** The order's accession (informational; the order is re-read by id). */
  accessionNumber?: string | undefined;
  /** Every instance of this study stored by this upload (new or already stored). */
  instances: readonly DicomInstance[];
}

export interface RecordedStudy {
  studyInstanceUid: string;
  imagingStudyId: string;
  orderId: string;
  numberOfInstances: number;
}

/** The FHIR Endpoint of our DICOMweb base (https://hl7.org/fhir/R4/endpoint.html, connection type dicom-wado-rs). */
export function dicomWebEndpoint(id: string, publicBaseUrl: string): Endpoint {
  return {
    resourceType: 'Endpoint',
    id,
    status: 'active',
    name: 'EHR DICOMweb (QIDO-RS, WADO-RS, STOW-RS)',
    connectionType: {
      system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type',
      code: 'dicom-wado-rs',
    },
    payloadType: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/endpoint-payload-type', code: 'DICOM' }] },
    ],
    payloadMimeType: ['application/dicom'],
    address: `${publicBaseUrl}/dicom-web`,
  };
}

/** Creates the Endpoint when missing, and corrects its address when the public base URL changed. */
async function ensureEndpoint(store: FhirStore, id: string, publicBaseUrl: string): Promise<void> {
  const wanted = dicomWebEndpoint(id, publicBaseUrl);
  let current: Endpoint | undefined;
  try {
    current = (await store.read('Endpoint', id)).resource as Endpoint;
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== 404 && status !== 410) throw err;
  }
  if (current?.address === wanted.address && current.status === 'active') return;
  try {
    await store.update('Endpoint', id, current ? { ...current, address: wanted.address, status: 'active' } : wanted);
  } catch (err) {
    // A concurrent upload created it first (the repository's write runs in a savepoint, so this transaction goes on).
    if ((err as { statusCode?: number }).statusCode !== 409 || current) throw err;
  }
}

/**
 * Records stored studies in the EHR, inside the caller's transaction (`store` must run on it): creates or updates
 * each ImagingStudy (merged by UID, so repeating an upload counts nothing twice), links the order with the bridge keys,
 * image count, upload time and status (see order-status.ts), and makes sure the DICOMweb Endpoint exists.
 */
export async function recordStudies(
  store: FhirStore,
  studies: readonly StudyToRecord[],
  opts: { endpointId: string; publicBaseUrl: string; newId: () => string; now: Date },
): Promise<RecordedStudy[]> {
  if (studies.length === 0) return [];
  await ensureEndpoint(store, opts.endpointId, opts.publicBaseUrl);
  const out: RecordedStudy[] = [];
  for (const s of studies) {
    const existing = (await store.findImagingStudyByStudyUid(s.studyInstanceUid))?.resource as ImagingStudy | undefined;
    const merged = mergeImagingStudy(existing, s.instances, {
      patientId: s.patientId,
      orderId: s.orderId,
      endpointId: opts.endpointId,
    });
    const id = existing?.id ?? opts.newId();
    await store.update('ImagingStudy', id, { ...merged, id }, { orthancStudyId: s.orthancStudyId });
    // Re-read inside the transaction: the order may have changed since matching.
    const order = (await store.read('ServiceRequest', s.orderId).catch(() => undefined))?.resource as
      | ServiceRequest
      | undefined;
    const t = orderTransition(order?.status ?? 'entered-in-error');
    if (!order || refId(order.subject?.reference, 'Patient') !== s.patientId || !t.accept) {
      throw new OrderChangedError(`order ${s.orderId} changed during the upload; nothing was recorded`);
    }
    await store.linkOrderToStudy(s.orderId, {
      studyInstanceUid: s.studyInstanceUid,
      orthancStudyId: s.orthancStudyId,
      numberOfImages: merged.numberOfInstances ?? 0,
      uploadedAt: opts.now,
      ...(t.accept && t.changed ? { status: t.status } : {}),
    });
    out.push({
      studyInstanceUid: s.studyInstanceUid,
      imagingStudyId: id,
      orderId: s.orderId,
      numberOfInstances: merged.numberOfInstances ?? 0,
    });
  }
  return out;
}

/**
 * Serializes EHR updates of the same studies across concurrent uploads (and the change feed): a transaction-level
 * advisory lock per Study Instance UID, taken in UID order so that two uploads never deadlock. Call first in the
 * transaction that records the studies.
 */
export async function lockStudies(tx: CommonQueryMethods, studyUids: Iterable<string>): Promise<void> {
  for (const uid of [...new Set(studyUids)].sort()) {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(hashtextextended(${`ehr-study:${uid}`}, 0))`);
  }
}

/** The order was revoked, re-assigned or removed between matching and recording. */
export class OrderChangedError extends EhrError {
  override readonly code: ErrorCode = 'EHR_ORDER_CHANGED';
  override name = 'OrderChangedError';
}
