import type { DatabaseTransactionConnection } from 'slonik';
import type { UnmatchedReason, UnmatchedSource } from './queue-state.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * What the change feed needs from the rest of the EHR. The implementations are the STOW issue's matching and linking
 * code (src/imaging/) and the audit module (src/audit/): the feed reuses them rather than copying them.
 */

/** A study as Orthanc holds it, described for matching (DICOM main tags, PS3.3 C.7.1.1 / C.7.2.1). */
export interface StudyToLink {
  studyInstanceUid: string;
  orthancStudyId: string;
  /** DICOM PatientID (0010,0020): the MRN. */
  patientId: string | undefined;
  /** DICOM AccessionNumber (0008,0050). */
  accessionNumber: string | undefined;
  patientName: string | undefined;
  studyDate: string | undefined;
  studyDescription: string | undefined;
  modalities: string[];
  numberOfSeries: number;
  numberOfInstances: number;
  /** `dimse` for studies that reached Orthanc by C-STORE. */
  source: UnmatchedSource;
}

export type LinkOutcome =
  | { linked: true; imagingStudyId: string; patientId: string; orderId: string }
  | { linked: false; reason: UnmatchedReason; detail: string };

/** The target a user picked when resolving a queue item. */
export interface LinkTarget {
  patientId: string;
  orderId: string;
  mrn: string;
  accessionNumber: string;
}

/** A linked study whose Orthanc copy disappeared. */
export interface UnlinkedStudy {
  imagingStudyId: string;
  orderId: string | undefined;
  patientId: string | undefined;
  studyInstanceUid: string;
}

/** A user's choice of patient/order did not name existing, consistent records. */
export class LinkTargetError extends EhrError {
  override readonly code: ErrorCode = 'EHR_LINK_TARGET';
  override name = 'LinkTargetError';
}

export interface StudyLinker {
  /**
   * Matches the study (MRN → patient, accession → order, patient/order consistency) and, when it matches, updates
   * the order, creates or updates the ImagingStudy and writes the upload-log row, all in `tx`. `reviewed`: a user
   * picked the patient and order (queue re-link), so the demographics comparison is not made again.
   */
  link(tx: DatabaseTransactionConnection, study: StudyToLink, opts?: { reviewed?: boolean }): Promise<LinkOutcome>;
  /** Instances the EHR already indexed for this Orthanc study (by STOW or the feed), `undefined` when none. */
  indexedInstances(
    tx: DatabaseTransactionConnection,
    orthancStudyId: string,
    studyInstanceUid: string,
  ): Promise<number | undefined>;
  /**
   * Resolves a user's `Patient/x` + `ServiceRequest/y` choice for the study `studyInstanceUid`; {@link LinkTargetError}
   * when they do not fit, checked before anything is changed: the order must be the patient's, accept images, and
   * not be linked to another study.
   */
  resolveTarget(
    tx: DatabaseTransactionConnection,
    patient: string,
    order: string,
    studyInstanceUid: string,
  ): Promise<LinkTarget>;
  /** Orthanc study ids of every live (not entered-in-error) linked ImagingStudy. */
  linkedOrthancStudyIds(tx: DatabaseTransactionConnection): Promise<string[]>;
  /** Marks the ImagingStudy of a vanished Orthanc study `entered-in-error` and unlinks its order. */
  markDeleted(tx: DatabaseTransactionConnection, orthancStudyId: string): Promise<UnlinkedStudy[]>;
}

/** An audit record of something the feed or a user did (the audit module turns it into a FHIR AuditEvent). */
export interface ChangeFeedAuditEvent {
  action:
    | 'study-linked'
    | 'study-queued'
    | 'study-relinked'
    | 'study-rejected'
    | 'study-deleted'
    | 'relink-failed'
    | 'relink-rolled-back';
  /** `system` for the consumer; the user's `who` for queue actions. */
  agent: { kind: 'system' } | { kind: 'user'; who: string; roles: readonly string[] };
  outcome: 'success' | 'failure';
  studyInstanceUid: string;
  orthancStudyId: string;
  patientId?: string | undefined;
  orderId?: string | undefined;
  imagingStudyId?: string | undefined;
  queueItemId?: string | undefined;
  detail?: string | undefined;
}

export interface ChangeFeedAudit {
  record(tx: DatabaseTransactionConnection, event: ChangeFeedAuditEvent): Promise<void>;
}
