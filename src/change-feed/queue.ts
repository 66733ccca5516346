import { type CommonQueryMethods, sql } from 'slonik';
import {
  nextStatus,
  type QueueAction,
  type QueueStatus,
  type UnmatchedReason,
  type UnmatchedSource,
} from './queue-state.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * The reconciliation queue: studies in Orthanc that matched no patient/order. Written by the change feed and by
 * STOW in `hold` mode through {@link enqueueUnmatched}; read and resolved through /api/v1/dicom/unmatched and the CLI.
 */

export interface UnmatchedInput {
  studyInstanceUid: string;
  orthancStudyId: string;
  /** DICOM PatientID as received. */
  patientId?: string | undefined;
  accessionNumber?: string | undefined;
  reason: UnmatchedReason;
  source: UnmatchedSource;
  detail?: string | undefined;
  patientName?: string | undefined;
  studyDate?: string | undefined;
  studyDescription?: string | undefined;
  modalities?: readonly string[] | undefined;
  numberOfInstances?: number | undefined;
}

export interface UnmatchedItem {
  id: string;
  studyInstanceUid: string;
  orthancStudyId: string;
  patientId: string | null;
  accessionNumber: string | null;
  patientName: string | null;
  studyDate: string | null;
  studyDescription: string | null;
  modalities: string[];
  numberOfInstances: number | null;
  reason: UnmatchedReason;
  detail: string | null;
  source: UnmatchedSource;
  status: QueueStatus;
  relinkPhase: 'to-temporary' | 'to-final' | null;
  target: { patient: string; order: string; mrn: string; accessionNumber: string } | null;
  linkedOrthancStudyId: string | null;
  linkedImagingStudyId: string | null;
  rejectReason: string | null;
  resolvedBy: string | null;
  resolvedAt: string | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

/** No queue item with this id. */
export class QueueItemNotFoundError extends EhrError {
  override readonly code: ErrorCode = 'EHR_QUEUE_ITEM_NOT_FOUND';
  override name = 'QueueItemNotFoundError';
}

const COLUMNS = sql.fragment`id::text, study_instance_uid, orthanc_study_id, dicom_patient_id, accession_number,
  patient_name, study_date, study_description, modalities, number_of_instances, reason, detail, source, status,
  relink_phase, target_patient_id, target_order_id, target_mrn, target_accession, linked_orthanc_study_id,
  linked_imaging_study_id, reject_reason, resolved_by, resolved_at, last_error, created_at, updated_at`;

type Row = Record<string, unknown>;

function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return new Date(v as string | number).toISOString();
}

function toItem(r: Row): UnmatchedItem {
  const s = (k: string) => (r[k] ?? null) as string | null;
  return {
    id: String(r['id']),
    studyInstanceUid: String(r['study_instance_uid']),
    orthancStudyId: String(r['orthanc_study_id']),
    patientId: s('dicom_patient_id'),
    accessionNumber: s('accession_number'),
    patientName: s('patient_name'),
    studyDate: s('study_date'),
    studyDescription: s('study_description'),
    modalities: (r['modalities'] as string[] | null) ?? [],
    numberOfInstances: r['number_of_instances'] === null ? null : Number(r['number_of_instances']),
    reason: r['reason'] as UnmatchedReason,
    detail: s('detail'),
    source: r['source'] as UnmatchedSource,
    status: r['status'] as QueueStatus,
    relinkPhase: s('relink_phase') as UnmatchedItem['relinkPhase'],
    target:
      r['target_patient_id'] === null
        ? null
        : {
            patient: String(r['target_patient_id']),
            order: String(r['target_order_id']),
            mrn: String(r['target_mrn']),
            accessionNumber: String(r['target_accession']),
          },
    linkedOrthancStudyId: s('linked_orthanc_study_id'),
    linkedImagingStudyId: s('linked_imaging_study_id'),
    rejectReason: s('reject_reason'),
    resolvedBy: s('resolved_by'),
    resolvedAt: iso(r['resolved_at']),
    lastError: s('last_error'),
    createdAt: iso(r['created_at']) ?? '',
    updatedAt: iso(r['updated_at']) ?? '',
  };
}

const opt = (v: string | undefined) => (v === undefined || v === '' ? null : v);

/**
 * Puts a study in the queue, or refreshes the open item of the same Orthanc study (so a study is never queued twice;
 * a rejected item stays rejected). Returns the item and whether it was new. Use inside the caller's transaction.
 */
export async function enqueueUnmatched(
  db: CommonQueryMethods,
  input: UnmatchedInput,
): Promise<{ item: UnmatchedItem; created: boolean }> {
  const row = (await db.one(sql.unsafe`
    INSERT INTO dicom_unmatched (study_instance_uid, orthanc_study_id, dicom_patient_id, accession_number, patient_name,
      study_date, study_description, modalities, number_of_instances, reason, detail, source)
    VALUES (${input.studyInstanceUid}, ${input.orthancStudyId}, ${opt(input.patientId)}, ${opt(input.accessionNumber)},
      ${opt(input.patientName)}, ${opt(input.studyDate)}, ${opt(input.studyDescription)},
      ${sql.array([...(input.modalities ?? [])], 'text')}, ${input.numberOfInstances ?? null}, ${input.reason},
      ${opt(input.detail)}, ${input.source})
    ON CONFLICT (orthanc_study_id) WHERE status IN ('pending', 'relinking', 'rejected') DO UPDATE SET
      number_of_instances = COALESCE(EXCLUDED.number_of_instances, dicom_unmatched.number_of_instances),
      modalities = CASE WHEN cardinality(EXCLUDED.modalities) > 0 THEN EXCLUDED.modalities
                        ELSE dicom_unmatched.modalities END,
      updated_at = now()
    RETURNING ${COLUMNS}, (xmax = 0) AS created`)) as Row;
  return { item: toItem(row), created: row['created'] === true };
}

export interface ListFilter {
  status?: QueueStatus | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
}

export async function listUnmatched(db: CommonQueryMethods, filter: ListFilter = {}): Promise<UnmatchedItem[]> {
  const where = filter.status ? sql.fragment`WHERE status = ${filter.status}` : sql.fragment``;
  const rows = (await db.any(sql.unsafe`
    SELECT ${COLUMNS} FROM dicom_unmatched ${where}
    ORDER BY created_at, id LIMIT ${filter.limit ?? 100} OFFSET ${filter.offset ?? 0}`)) as readonly Row[];
  return rows.map(toItem);
}

export async function getUnmatched(db: CommonQueryMethods, id: string, forUpdate = false): Promise<UnmatchedItem> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new QueueItemNotFoundError(`no unmatched study ${id}`);
  }
  const lock = forUpdate ? sql.fragment`FOR UPDATE` : sql.fragment``;
  const row = (await db.maybeOne(sql.unsafe`SELECT ${COLUMNS} FROM dicom_unmatched WHERE id = ${id} ${lock}`)) as Row;
  if (!row) throw new QueueItemNotFoundError(`no unmatched study ${id}`);
  return toItem(row);
}

/** The open item (pending, relinking or rejected) of an Orthanc study, if any. */
export async function openItemFor(db: CommonQueryMethods, orthancStudyId: string): Promise<UnmatchedItem | undefined> {
  const row = (await db.maybeOne(sql.unsafe`
    SELECT ${COLUMNS} FROM dicom_unmatched
    WHERE orthanc_study_id = ${orthancStudyId} AND status IN ('pending', 'relinking', 'rejected')`)) as Row | null;
  return row ? toItem(row) : undefined;
}

/** More instances arrived for a study that is already in the queue: keep its counts (and its reason) current. */
export async function refreshOpenItem(
  db: CommonQueryMethods,
  orthancStudyId: string,
  instances: number,
  modalities: readonly string[],
  why?: { reason: UnmatchedReason; detail: string },
): Promise<void> {
  const reason = why ? sql.fragment`reason = ${why.reason}, detail = ${why.detail},` : sql.fragment``;
  await db.query(sql.unsafe`
    UPDATE dicom_unmatched SET number_of_instances = ${instances}, modalities = ${sql.array([...modalities], 'text')},
      ${reason} updated_at = now()
    WHERE orthanc_study_id = ${orthancStudyId} AND status IN ('pending', 'rejected')`);
}

/** Whether an item with this StudyInstanceUID is being re-linked now (its Orthanc copies are in transit). */
export async function relinkInProgress(db: CommonQueryMethods, studyInstanceUid: string): Promise<boolean> {
  const row = await db.maybeOne(sql.unsafe`
    SELECT 1 AS x FROM dicom_unmatched WHERE study_instance_uid = ${studyInstanceUid} AND status = 'relinking'
    LIMIT 1`);
  return row !== null;
}

export interface TransitionFields {
  relinkPhase?: 'to-temporary' | 'to-final' | null;
  target?: { patient: string; order: string; mrn: string; accessionNumber: string };
  linkedOrthancStudyId?: string;
  linkedImagingStudyId?: string;
  rejectReason?: string;
  resolvedBy?: string | null;
  lastError?: string | null;
  /** Forget the chosen target (after a roll-back). */
  clearTarget?: boolean;
}

/** Applies a state-machine action to a locked item (see queue-state.ts) and stores the given fields. */
export async function transition(
  tx: CommonQueryMethods,
  item: UnmatchedItem,
  action: QueueAction,
  f: TransitionFields = {},
): Promise<UnmatchedItem> {
  const status = nextStatus(item.status, action);
  const resolved = status === 'linked' || status === 'rejected' || status === 'deleted';
  const row = (await tx.one(sql.unsafe`
    UPDATE dicom_unmatched SET
      status = ${status},
      relink_phase = ${f.relinkPhase === undefined ? item.relinkPhase : f.relinkPhase},
      target_patient_id = ${f.target?.patient ?? (f.clearTarget ? null : item.target?.patient) ?? null},
      target_order_id = ${f.target?.order ?? (f.clearTarget ? null : item.target?.order) ?? null},
      target_mrn = ${f.target?.mrn ?? (f.clearTarget ? null : item.target?.mrn) ?? null},
      target_accession = ${f.target?.accessionNumber ?? (f.clearTarget ? null : item.target?.accessionNumber) ?? null},
      linked_orthanc_study_id = ${f.linkedOrthancStudyId ?? item.linkedOrthancStudyId},
      linked_imaging_study_id = ${f.linkedImagingStudyId ?? item.linkedImagingStudyId},
      reject_reason = ${f.rejectReason ?? item.rejectReason},
      resolved_by = ${f.resolvedBy === undefined ? item.resolvedBy : f.resolvedBy},
      resolved_at = ${resolved ? sql.fragment`now()` : sql.fragment`resolved_at`},
      last_error = ${f.lastError === undefined ? item.lastError : f.lastError},
      updated_at = now()
    WHERE id = ${item.id}
    RETURNING ${COLUMNS}`)) as Row;
  return toItem(row);
}

/**
 * The pending items of an Orthanc study that is now linked (a retried upload recorded it, or it matches now): marked
 * `linked` with the study and ImagingStudy, so that no pending item remains for a linked study. Items of other Orthanc
 * studies with the same StudyInstanceUID (copies under another PatientID) stay: those copies are still unlinked.
 * Returns the items closed. Use inside the transaction that linked the study.
 */
export async function closeLinkedByUpload(
  tx: CommonQueryMethods,
  link: { orthancStudyId: string; imagingStudyId?: string | undefined; by: string },
): Promise<UnmatchedItem[]> {
  const rows = (await tx.any(sql.unsafe`
    UPDATE dicom_unmatched SET status = 'linked', linked_orthanc_study_id = orthanc_study_id,
      linked_imaging_study_id = ${link.imagingStudyId ?? null}, resolved_by = ${link.by}, resolved_at = now(),
      last_error = NULL, updated_at = now()
    WHERE orthanc_study_id = ${link.orthancStudyId} AND status = 'pending'
    RETURNING ${COLUMNS}`)) as readonly Row[];
  return rows.map(toItem);
}

/** The statuses `unmatched list` shows by default: the items that need someone (pending, or a re-link to finish). */
export const NEEDS_ATTENTION = ['pending', 'relinking'] as const;

/** Like {@link listUnmatched}, for several statuses. */
export async function listUnmatchedIn(
  db: CommonQueryMethods,
  statuses: readonly QueueStatus[],
  limit = 1000,
): Promise<UnmatchedItem[]> {
  const rows = (await db.any(sql.unsafe`
    SELECT ${COLUMNS} FROM dicom_unmatched WHERE status = ANY(${sql.array([...statuses], 'text')})
    ORDER BY created_at, id LIMIT ${limit}`)) as readonly Row[];
  return rows.map(toItem);
}
