/**
 * Pure builders of AuditEvents for DICOMweb (DICOM PS3.18), following the DICOM audit messages of PS3.15 A.5.3
 * (https://dicom.nema.org/medical/dicom/current/output/html/part15.html#sect_A.5.3) in their FHIR form, with the
 * BALP agents and entities (https://profiles.ihe.net/ITI/BALP/):
 *
 * - QIDO-RS (search): type DCM 110112 "Query", action E, the raw query base64 in a BALP query entity.
 * - WADO-RS (retrieve): type DCM 110104 "DICOM Instances Transferred", action R (the server sends, the client reads
 *   or exports the instances), one entity per Study Instance UID (identifier type DCM 110180). The record that closes
 *   a transfer window (transfer-window.ts) adds the window's `period` and its counts as details of the study entity
 *   (`retrievals`, `instances`, `series`, `frames`, `bytes`).
 * - Study archive download (`/api/v1/studies/{uid}/archive`): type DCM 110106 "Export", action R, as WADO-RS.
 * - STOW-RS (store): type DCM 110104, action C (created here), the studies and the order (ServiceRequest and
 *   accession number) as entities.
 *
 * Each also carries the restful-interaction subtype (search-type, read, create) so that one `subtype` search finds
 * FHIR and DICOMweb accesses alike.
 */
import type { AuditEvent, AuditEventEntity, AuditEventEntityDetail, Identifier, Reference } from '@medplum/fhirtypes';
import { type AuditBase, dataEntity, frame, patientEntities, queryEntity } from './balp.ts';
import type { TransferTally } from './transfer-window.ts';
import { ENTITY_ROLE, ENTITY_TYPE, IDENTIFIER_TYPE, restSubtype, TYPE } from './codes.ts';

/** A study touched, optionally narrowed to a series or instance. */
export interface StudyRef {
  readonly studyUid: string;
  readonly seriesUid?: string | undefined;
  readonly instanceUid?: string | undefined;
}

/** The order a STOW belongs to: its ServiceRequest id and/or accession number. */
export interface OrderRef {
  readonly serviceRequestId?: string | undefined;
  readonly accessionNumber?: string | undefined;
}

/** DICOM ParticipantObject "Study" in FHIR form: a system object whose identifier is the Study Instance UID. */
export function studyEntity(study: StudyRef): AuditEventEntity {
  const out: AuditEventEntity = {
    type: ENTITY_TYPE.systemObject,
    role: ENTITY_ROLE.report,
    what: { identifier: { type: { coding: [IDENTIFIER_TYPE.studyInstanceUid] }, value: study.studyUid } },
  };
  const detail: AuditEventEntityDetail[] = [];
  if (study.seriesUid) detail.push({ type: 'SeriesInstanceUID', valueString: study.seriesUid });
  if (study.instanceUid) detail.push({ type: 'SOPInstanceUID', valueString: study.instanceUid });
  if (detail.length) out.detail = detail;
  return out;
}

/** The order (ServiceRequest) entity of a STOW. */
export function orderEntity(order: OrderRef): AuditEventEntity | undefined {
  if (!order.serviceRequestId && !order.accessionNumber) return undefined;
  const what: Reference = {};
  if (order.serviceRequestId) what.reference = `ServiceRequest/${order.serviceRequestId}`;
  if (order.accessionNumber) {
    const identifier: Identifier = { type: { coding: [IDENTIFIER_TYPE.accession] }, value: order.accessionNumber };
    what.identifier = identifier;
  }
  return dataEntity(what);
}

/** Study entities, deduplicated. The UIDs come from the request itself, so a denied event keeps them too. */
function studies(refs: readonly StudyRef[] | undefined): AuditEventEntity[] {
  const seen = new Set<string>();
  const out: AuditEventEntity[] = [];
  for (const s of refs ?? []) {
    const key = `${s.studyUid}|${s.seriesUid ?? ''}|${s.instanceUid ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(studyEntity(s));
  }
  return out;
}

export interface DicomQueryInput {
  /** Request path below the DICOMweb root, e.g. `/studies` or `/studies/1.2.3/series`. */
  readonly path: string;
  /** The raw query string, as sent (without `?`). */
  readonly query: string;
  /** Studies the query was scoped to by its path (`/studies/{uid}/series`). */
  readonly studies?: readonly StudyRef[] | undefined;
  /** Patients whose studies were returned (only those the caller may see). */
  readonly patientIds?: Iterable<string> | undefined;
}

/** QIDO-RS: a DICOM Query event (PS3.15 A.5.3.10) with the query base64 in the BALP query entity. */
export function dicomQueryEvent(base: AuditBase, input: DicomQueryInput): AuditEvent {
  const raw = `${input.path}${input.query ? `?${input.query}` : ''}`;
  const entities = [
    ...patientEntities(base, input.patientIds ?? []),
    ...studies(input.studies),
    queryEntity(raw, 'QIDO-RS'),
  ];
  return frame(base, TYPE.query, [restSubtype('search-type')], 'E', 'query', entities);
}

export interface DicomRetrieveInput {
  readonly studies: readonly StudyRef[];
  readonly patientIds?: Iterable<string> | undefined;
  /** The instances leave as a downloaded archive (zip, DICOMDIR media), not to a viewer: a Data Export event. */
  readonly export?: boolean | undefined;
  /** The totals of a transfer window (transfer-window.ts): the event then stands for all its retrievals. */
  readonly transfer?: TransferTally | undefined;
}

/** The counts of a transfer window, as details of its study entity. */
function transferDetails(t: TransferTally): AuditEventEntityDetail[] {
  return [
    { type: 'retrievals', valueString: String(t.retrievals) },
    { type: 'instances', valueString: String(t.instances) },
    { type: 'series', valueString: String(t.series) },
    { type: 'frames', valueString: String(t.frames) },
    { type: 'bytes', valueString: String(t.bytes) },
  ];
}

/**
 * WADO-RS: DICOM Instances Transferred with action R (PS3.15 A.5.3.4), one entity per study. A study archive
 * download is a Data Export (DCM 110106, PS3.15 A.5.3.7), also action R, with the same entities.
 */
export function dicomRetrieveEvent(base: AuditBase, input: DicomRetrieveInput): AuditEvent {
  const transfer = input.transfer;
  const studyEntities = studies(input.studies).map((e) =>
    transfer ? { ...e, detail: [...(e.detail ?? []), ...transferDetails(transfer)] } : e,
  );
  const entities = [...patientEntities(base, input.patientIds ?? []), ...studyEntities];
  const type = input.export ? TYPE.export : TYPE.instancesTransferred;
  const event = frame(base, type, [restSubtype('read')], 'R', 'read', entities);
  return transfer ? { ...event, period: { start: transfer.start, end: transfer.end } } : event;
}

export interface DicomStoreInput {
  readonly studies: readonly StudyRef[];
  readonly order?: OrderRef | undefined;
  readonly patientIds?: Iterable<string> | undefined;
}

/** STOW-RS: DICOM Instances Transferred with action C (PS3.15 A.5.3.4): the studies and the order as entities. */
export function dicomStoreEvent(base: AuditBase, input: DicomStoreInput): AuditEvent {
  const entities = [...patientEntities(base, input.patientIds ?? []), ...studies(input.studies)];
  const order = input.order && !base.denied ? orderEntity(input.order) : undefined;
  if (order) entities.push(order);
  return frame(base, TYPE.instancesTransferred, [restSubtype('create')], 'C', 'write', entities);
}
