/**
 * Typed DICOMweb errors. The /dicom-web scope turns them into readable `application/dicom+json` bodies
 * (ErrorComment (0000,0902)) with the status given here; never a stack trace.
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

export class DicomWebError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOMWEB_ERROR';
  override name = 'DicomWebError';
  constructor(status: number, message: string) {
    super(message);
    this.httpStatus = status;
  }
}

/** A malformed or unsupported request parameter (PS3.18 §8.3.4: the reason is stated in the body). */
export class BadDicomWebRequestError extends DicomWebError {
  override readonly code: ErrorCode = 'EHR_DICOMWEB_BAD_REQUEST';
  override name = 'BadDicomWebRequestError';
  constructor(message: string) {
    super(400, message);
  }
}

/**
 * The one answer for an unknown study and for a study the caller may not see: identical status and body, so that a
 * caller cannot tell whether the study exists.
 */
export class StudyNotFoundError extends DicomWebError {
  override readonly code: ErrorCode = 'EHR_DICOM_STUDY_NOT_FOUND';
  override name = 'StudyNotFoundError';
  constructor() {
    super(404, NOT_FOUND_MESSAGE);
  }
}

export const NOT_FOUND_MESSAGE = 'Not found';
