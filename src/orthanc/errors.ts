import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Orthanc could not be reached, or did not answer within the time-out. */
export class OrthancUnavailableError extends EhrError {
  override readonly code: ErrorCode = 'EHR_ORTHANC_UNAVAILABLE';
  override name = 'OrthancUnavailableError';
  readonly timedOut: boolean;
  constructor(message: string, timedOut: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.timedOut = timedOut;
    this.httpStatus = timedOut ? 504 : 502;
  }
}

/** Orthanc answered with an unexpected HTTP status. */
export class OrthancHttpError extends EhrError {
  override readonly code: ErrorCode = 'EHR_ORTHANC_HTTP';
  override name = 'OrthancHttpError';
  /** The status Orthanc answered with (the facade's own answer is then 502). */
  readonly orthancStatus: number;
  /** Orthanc's own explanation, when its answer carried one. */
  readonly detail: string | undefined;
  constructor(status: number, path: string, detail?: string) {
    super(`Orthanc answered ${status} for ${path}${detail ? `: ${detail}` : ''}`);
    this.orthancStatus = status;
    this.detail = detail;
  }
}
