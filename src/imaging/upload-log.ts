import { type CommonQueryMethods, sql } from 'slonik';

/**
 * `dicom_upload_logs`: one row per study per upload request, plus one for parts that named no study
 * (founding design, upload workflow step 7). Building the rows is pure; {@link insertUploadLogs} writes them.
 */

export type UploadSource = 'stow' | 'upload' | 'dimse';

/** One instance (part) of an upload as the log sees it. */
export interface LoggedInstance {
  studyInstanceUid?: string | undefined;
  sopInstanceUid?: string | undefined;
  file?: string | undefined;
  patientId?: string | undefined;
  orderId?: string | undefined;
  orthancStudyId?: string | undefined;
  bytes: number;
  stored: boolean;
  /** Newly stored (not already in Orthanc). */
  isNew: boolean;
  failure?: { reason: number; comment: string } | undefined;
}

export interface UploadLogRow {
  requestId: string;
  source: UploadSource;
  uploadedBy: string;
  clientId: string | null;
  patientId: string | null;
  orderId: string | null;
  studyInstanceUid: string | null;
  orthancStudyId: string | null;
  numberOfFiles: number;
  numberStored: number;
  numberNew: number;
  numberFailed: number;
  totalSizeBytes: number;
  status: 'success' | 'partial' | 'failed';
  failures: { sopInstanceUid: string | null; file: string | null; reason: number; comment: string }[];
  startedAt: Date;
  finishedAt: Date;
}

export interface UploadMeta {
  requestId: string;
  source: UploadSource;
  uploadedBy: string;
  clientId?: string | undefined;
  startedAt: Date;
  finishedAt: Date;
}

/** Groups the instances of one request by study (parts without a readable study go to one row with no study). */
export function buildUploadLogRows(instances: readonly LoggedInstance[], meta: UploadMeta): UploadLogRow[] {
  const groups = new Map<string | null, LoggedInstance[]>();
  for (const i of instances) {
    const key = i.studyInstanceUid ?? null;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  }
  return [...groups.entries()].map(([study, list]) => {
    const stored = list.filter((i) => i.stored);
    const failed = list.filter((i) => !i.stored);
    const first = <K extends keyof LoggedInstance>(k: K) =>
      (stored.find((i) => i[k] !== undefined)?.[k] ?? list.find((i) => i[k] !== undefined)?.[k] ?? null) as NonNullable<
        LoggedInstance[K]
      > | null;
    return {
      requestId: meta.requestId,
      source: meta.source,
      uploadedBy: meta.uploadedBy,
      clientId: meta.clientId ?? null,
      patientId: first('patientId'),
      orderId: first('orderId'),
      studyInstanceUid: study,
      orthancStudyId: first('orthancStudyId'),
      numberOfFiles: list.length,
      numberStored: stored.length,
      numberNew: stored.filter((i) => i.isNew).length,
      numberFailed: failed.length,
      totalSizeBytes: list.reduce((n, i) => n + i.bytes, 0),
      status: failed.length === 0 ? 'success' : stored.length === 0 ? 'failed' : 'partial',
      failures: failed.map((i) => ({
        sopInstanceUid: i.sopInstanceUid ?? null,
        file: i.file ?? null,
        reason: i.failure?.reason ?? 0x0110,
        comment: i.failure?.comment ?? 'not stored',
      })),
      startedAt: meta.startedAt,
      finishedAt: meta.finishedAt,
    };
  });
}

export async function insertUploadLogs(db: CommonQueryMethods, rows: readonly UploadLogRow[]): Promise<void> {
  for (const r of rows) {
    await db.query(sql.unsafe`
      INSERT INTO dicom_upload_logs (request_id, source, uploaded_by, client_id, patient_id, order_id,
        study_instance_uid, orthanc_study_id, number_of_files, number_stored, number_new, number_failed,
        total_size_bytes, upload_status, failures, started_at, finished_at)
      VALUES (${r.requestId}, ${r.source}, ${r.uploadedBy}, ${r.clientId}, ${r.patientId}, ${r.orderId},
        ${r.studyInstanceUid}, ${r.orthancStudyId}, ${r.numberOfFiles}, ${r.numberStored}, ${r.numberNew},
        ${r.numberFailed}, ${r.totalSizeBytes}, ${r.status}, ${sql.jsonb(r.failures)},
        ${r.startedAt.toISOString()}::timestamptz, ${r.finishedAt.toISOString()}::timestamptz)`);
  }
}
