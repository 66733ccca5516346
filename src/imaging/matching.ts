import type { Access } from '../auth/access.ts';
import { demographicContradictions, type PatientDemographics } from './demographics.ts';
import type { DicomInstance } from './dicom-instance.ts';
import { orderTransition, type RequestStatus } from './order-status.ts';

/**
 * Matching a DICOM instance to the EHR (founding design, upload workflow steps 3 and 4): PatientID must be a
 * patient's MRN, AccessionNumber an order's accession, and the order's subject that patient. Pure: the caller does
 * the lookups (see `ehr-records.ts`) and this decides. Shared by STOW-RS and, later, C-STORE arrivals (`dimse`).
 */

export interface PatientRecord {
  readonly id: string;
  readonly mrn: string;
  /** Name, birth date and gender from the EHR, compared with the instance's (see demographics.ts). */
  readonly demographics?: PatientDemographics | undefined;
}

export interface OrderRecord {
  readonly id: string;
  readonly accession: string;
  /** Patient id of the order's subject. */
  readonly patientId: string | null;
  readonly status: RequestStatus;
  /** The study already linked to the order, if any. */
  readonly studyInstanceUid: string | null;
}

export interface StudyRecord {
  readonly id: string;
  readonly patientId: string | null;
}

export interface MatchLookup {
  readonly patient?: PatientRecord | undefined;
  readonly order?: OrderRecord | undefined;
  /** The ImagingStudy already recorded for the instance's StudyInstanceUID, if any. */
  readonly study?: StudyRecord | undefined;
  /**
   * Where the StudyInstanceUID is already linked in the EHR, read without the caller's access restrictions (a
   * caller that cannot see another patient's study must still not add to it).
   */
  readonly studyLink?: StudyLink | undefined;
}

/** The patient and order a Study Instance UID is linked to in the EHR. */
export interface StudyLink {
  readonly patientId: string | null;
  readonly orderId: string | null;
}

export type MismatchCode =
  | 'unknown-patient'
  | 'no-accession'
  | 'unknown-order'
  | 'order-other-patient'
  | 'order-not-actionable'
  | 'order-other-study'
  | 'study-other-patient'
  | 'study-other-order'
  | 'demographics-mismatch';

export type MatchResult =
  | { readonly matched: true; readonly patient: PatientRecord; readonly order: OrderRecord }
  | {
      readonly matched: false;
      readonly code: MismatchCode;
      /** Short text (fits ErrorComment, LO 64). */
      readonly comment: string;
      /** Full explanation with the values involved. */
      readonly detail: string;
      /** The patient the MRN names, if known (for the authorization decision). */
      readonly patient?: PatientRecord;
    };

/**
 * Decides whether the instance matches the EHR. `demographics: false` skips the name/birth date/sex comparison, for
 * a study a user linked by hand from the reconciliation queue (the user's choice is the review).
 */
export function decideMatch(
  inst: DicomInstance,
  found: MatchLookup,
  opts: { demographics?: boolean } = {},
): MatchResult {
  const { patient, order, study } = found;
  const miss = (code: MismatchCode, comment: string, detail: string): MatchResult => ({
    matched: false,
    code,
    comment,
    detail,
    ...(patient ? { patient } : {}),
  });
  if (!patient) {
    return miss('unknown-patient', 'PatientID is not the MRN of any patient', `no patient has MRN "${inst.patientId}"`);
  }
  if (!inst.accessionNumber) {
    return miss('no-accession', 'AccessionNumber is empty', 'the instance has no AccessionNumber to match an order');
  }
  if (!order) {
    return miss(
      'unknown-order',
      'AccessionNumber is not the accession of any order',
      `no order has accession "${inst.accessionNumber}"`,
    );
  }
  if (order.patientId !== patient.id) {
    return miss(
      'order-other-patient',
      "PatientID does not match the order's patient",
      `order ${order.accession} is for another patient than MRN "${inst.patientId}"`,
    );
  }
  const t = orderTransition(order.status);
  if (!t.accept) {
    return miss(
      'order-not-actionable',
      `order ${order.status}: images not accepted`,
      `order ${order.accession}: ${t.reason}`,
    );
  }
  if (order.studyInstanceUid && order.studyInstanceUid !== inst.studyInstanceUid) {
    return miss(
      'order-other-study',
      'the order is already linked to another study',
      `order ${order.accession} is linked to study ${order.studyInstanceUid}, not ${inst.studyInstanceUid}`,
    );
  }
  const link = found.studyLink;
  if ((study && study.patientId !== patient.id) || (link?.patientId && link.patientId !== patient.id)) {
    return miss(
      'study-other-patient',
      'the study is already recorded for another patient',
      `study ${inst.studyInstanceUid} is recorded for another patient than MRN "${inst.patientId}"`,
    );
  }
  if (link?.orderId && link.orderId !== order.id) {
    return miss(
      'study-other-order',
      'the study is already linked to another order',
      `study ${inst.studyInstanceUid} is linked to another order than ${order.accession}`,
    );
  }
  const contradictions = opts.demographics === false ? [] : demographicContradictions(inst, patient.demographics ?? {});
  if (contradictions.length > 0) {
    return miss(
      'demographics-mismatch',
      'patient name, birth date or sex contradicts the EHR',
      `MRN "${inst.patientId}" and accession ${order.accession} match, but ${contradictions.join('; ')}`,
    );
  }
  return { matched: true, patient, order };
}

/**
 * "May this caller store imaging for this patient?" through the shared access policy: the caller needs `create` on
 * ImagingStudy, and the patient must be inside its patient filter. An unknown patient (`undefined`) is allowed only
 * to callers without a patient constraint, so that a restricted caller cannot learn whether an MRN exists.
 */
export function mayStoreImaging(access: Access, patientId: string | undefined): boolean {
  if (!access.allows('create', 'ImagingStudy')) return false;
  const f = access.patientFilter('create', 'ImagingStudy');
  if (f.all) return true;
  return patientId !== undefined && f.patientIds.includes(patientId);
}
