/**
 * Typed DICOMweb errors. The /dicom-web scope turns them into readable `application/dicom+json` bodies
 * (ErrorComment (0000,0902)) with the status given here; never a stack trace.
 */
export class DicomWebError extends Error {
  override name = 'DicomWebError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A malformed or unsupported request parameter (PS3.18 §8.3.4: the reason is stated in the body). */
export class BadDicomWebRequestError extends DicomWebError {
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
  override name = 'StudyNotFoundError';
  constructor() {
    super(404, NOT_FOUND_MESSAGE);
  }
}

export const NOT_FOUND_MESSAGE = 'Not found';

/** The DICOM JSON error body: ErrorComment (0000,0902) carrying the human-readable reason. */
export function errorBody(message: string): string {
  return JSON.stringify({ '00000902': { vr: 'LO', Value: [message] } });
}
