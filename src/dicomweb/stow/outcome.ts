/**
 * Per-instance outcomes of a STOW-RS request and the status codes they carry
 * (DICOM PS3.18 §10.5.3, PS3.4 Annex B.2.3 and PS3.7 Annex C for the code values).
 */
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/**
 * Failure Reason (0008,1197) values used by the facade. Each is documented in the DICOM conformance statement
 * (docs/dicomweb.md).
 */
export const FailureReason = {
  /** 0x0110 Processing failure: Orthanc refused or failed to store, or the EHR update failed (nothing kept). */
  ProcessingFailure: 0x0110,
  /** 0x0124 Refused: not authorized to create imaging for this patient. */
  NotAuthorized: 0x0124,
  /** 0xA700 Refused: out of resources; here, the instance is larger than the per-instance limit. */
  OutOfResources: 0xa700,
  /**
   * 0xA900 Error: data set does not match; here, a required attribute is missing or invalid, a value breaks the
   * rules of src/imaging/dicom-values.ts (several values, NUL, invalid characters, too long), the study is not the
   * one in the URL, or the instance does not match the EHR (patient, order, study link, demographics when refused).
   */
  DataSetMismatch: 0xa900,
  /** 0xC000 Error: cannot understand; not a readable DICOM Part 10 instance. */
  CannotUnderstand: 0xc000,
  /**
   * 0xC122 Referenced Transfer Syntax not supported (PS3.18 Table I.2-2): the transfer syntax is empty or not one of
   * those the facade accepts (src/imaging/dicom-values.ts).
   */
  TransferSyntaxNotSupported: 0xc122,
} as const;
export type FailureReasonCode = (typeof FailureReason)[keyof typeof FailureReason];

/**
 * Warning Reason (0008,1196) values. PS3.18 §I.2.1 defines B000 (coercion), B006 (elements discarded) and B007 (does
 * not match its SOP Class), none of which says what happened to a held instance, and allows further codes defined in
 * the conformance statement (docs/dicomweb.md, "DICOM conformance (STOW-RS)").
 */
export const WarningReason = {
  /**
   * 0xB100 (implementation-specific) Stored, not linked, held for review: the instance is in the archive unchanged but
   * not linked to any patient or order; it waits in the reconciliation queue for manual linking.
   */
  HeldForReview: 0xb100,
} as const;
export type WarningReasonCode = (typeof WarningReason)[keyof typeof WarningReason];

/** Why an instance is not stored: a code, a short comment (ErrorComment is LO, 64 chars) and a fuller detail. */
export class InstanceRejection extends EhrError {
  override readonly code: ErrorCode = 'EHR_STOW_INSTANCE_REJECTED';
  override name = 'InstanceRejection';
  readonly reason: FailureReasonCode;
  readonly comment: string;
  constructor(reason: FailureReasonCode, comment: string, detail?: string) {
    super(detail ?? comment);
    this.reason = reason;
    this.comment = comment.length > 64 ? `${comment.slice(0, 61)}...` : comment;
  }
}

/** Identity of an instance as far as it could be read. */
export interface InstanceRef {
  /** Position of the part in the request (0-based). */
  readonly part: number;
  /** File name from the part's Content-Disposition (form uploads, some STOW clients). */
  readonly file?: string;
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
}

export interface StoredOutcome extends InstanceRef {
  readonly kind: 'stored';
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  /** Orthanc already had this instance (a repeated upload). */
  readonly alreadyStored: boolean;
  readonly warning?: { readonly reason: WarningReasonCode; readonly comment: string; readonly detail: string };
}

export interface FailedOutcome extends InstanceRef {
  readonly kind: 'failed';
  readonly reason: FailureReasonCode;
  readonly comment: string;
  readonly detail: string;
}

export type InstanceOutcome = StoredOutcome | FailedOutcome;

export function failed(ref: InstanceRef, err: InstanceRejection): FailedOutcome {
  return { ...ref, kind: 'failed', reason: err.reason, comment: err.comment, detail: err.message };
}

/**
 * The HTTP status of a STOW-RS response (PS3.18 §10.5.3): 200 when every instance was stored without warnings,
 * 202 when some failed or carry warnings, 409 when none could be stored.
 */
export function stowStatus(outcomes: readonly InstanceOutcome[]): 200 | 202 | 409 {
  const stored = outcomes.filter((o) => o.kind === 'stored');
  if (stored.length === 0) return 409;
  if (stored.length < outcomes.length || stored.some((o) => o.warning)) return 202;
  return 200;
}
