/**
 * The contract of the STOW-RS pipeline ({@link storeInstances} in store-instances.ts): what it needs from the app
 * ({@link StowDeps}), how one request runs ({@link StowOptions}) and what it answers ({@link StowResult}). A leaf, so
 * that the pipeline and the EHR transaction it starts (record-upload.ts) both depend on it, not on each other.
 */
import type { CommonQueryMethods } from 'slonik';
import type { Access } from '../../auth/access.ts';
import type { InstanceBytes } from '../../imaging/dicom-instance.ts';
import type { FhirStore, RecordedStudy, StudyToRecord } from '../../imaging/ehr-link.ts';
import type { StudyLink } from '../../imaging/matching.ts';
import type { UploadLogRow, UploadSource } from '../../imaging/upload-log.ts';
import type { OrthancStoredInstance } from '../../orthanc/client.ts';
import type { InstanceOutcome } from './outcome.ts';

export interface HoldInput {
  studyInstanceUid: string;
  orthancStudyId: string;
  patientId: string;
  accessionNumber?: string | undefined;
  reason: 'unknown-mrn' | 'unknown-accession' | 'patient-order-mismatch' | 'missing-identifiers';
  detail: string;
  modalities: string[];
  numberOfInstances: number;
  studyDate?: string | undefined;
  studyDescription?: string | undefined;
}

export interface StowDeps {
  orthanc: {
    /** Stores one instance, given as one buffer or as the chunks it arrived in. */
    storeInstance(body: InstanceBytes): Promise<OrthancStoredInstance>;
    deleteInstance(id: string): Promise<void>;
  };
  /** Lookups with the caller's access. */
  lookup: FhirStore;
  /** Where a Study Instance UID is already linked, regardless of the caller's access (refusals only). */
  studyLink?: ((studyInstanceUid: string) => Promise<StudyLink | undefined>) | undefined;
  /**
   * Runs the EHR transaction. `store` writes on the transaction with the linking access for `patientIds`;
   * `tx` is for plain SQL (upload log, hold queue).
   */
  transaction<T>(patientIds: string[], fn: (store: FhirStore, tx: CommonQueryMethods) => Promise<T>): Promise<T>;
  recordStudies(store: FhirStore, studies: StudyToRecord[]): Promise<RecordedStudy[]>;
  insertLogs(tx: CommonQueryMethods, rows: UploadLogRow[]): Promise<void>;
  /** The reconciliation queue (hold mode); absent when the queue is not available. */
  hold?: ((tx: CommonQueryMethods, input: HoldInput) => Promise<void>) | undefined;
  /** Closes the pending queue items of studies this upload linked (e.g. a retry after a failed upload). */
  closeQueued?: ((tx: CommonQueryMethods, linked: readonly RecordedStudyIn[]) => Promise<void>) | undefined;
  /**
   * Called once the upload is recorded (or undone) with every study that got instances in Orthanc, linked or held,
   * so that caches of Orthanc's answers drop them; absent in tests that need no cache.
   */
  studiesStored?: ((studyUids: string[]) => void) | undefined;
}

export interface StowOptions {
  access: Access;
  requestId: string;
  source: UploadSource;
  targetStudy?: string | undefined;
  maxInstanceBytes: number;
  unmatched: 'reject' | 'hold';
  /**
   * An instance whose MRN and accession match but whose name, birth date or sex contradicts the EHR patient:
   * `hold` (stored, not linked, queued for review; the default) or `refuse` (0xA900).
   */
  demographicsMismatch?: 'hold' | 'refuse';
  concurrency: number;
  /** Which part media types are DICOM (STOW: application/dicom, application/octet-stream or none). */
  acceptPart: (mediaType: string | undefined) => boolean;
  log: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /**
   * How long the EHR transaction started before the last stores settled may wait for them (stow/record-upload.ts); default
   * `EARLY_WAIT_MS` (2 s).
   */
  earlyRecordWaitMs?: number;
  /** Audit: called inside the EHR transaction with the linked studies, so both commit together. */
  audit?: (tx: CommonQueryMethods, linked: readonly StudyToRecord[]) => Promise<void>;
}

export interface StowResult {
  outcomes: InstanceOutcome[];
  recorded: RecordedStudy[];
  bytes: number;
  /** The multipart framing broke after these outcomes (the rest of the body was not read). */
  framingError?: string;
}

/** A study the upload linked: its Orthanc study and ImagingStudy. */
export interface RecordedStudyIn {
  orthancStudyId: string;
  imagingStudyId: string | undefined;
}
