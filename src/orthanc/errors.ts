/** Orthanc could not be reached, or did not answer within the time-out. */
export class OrthancUnavailableError extends Error {
  override name = 'OrthancUnavailableError';
  readonly timedOut: boolean;
  constructor(message: string, timedOut: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.timedOut = timedOut;
  }
}

/** Orthanc answered with an unexpected HTTP status. */
export class OrthancHttpError extends Error {
  override name = 'OrthancHttpError';
  readonly status: number;
  constructor(status: number, path: string) {
    super(`Orthanc answered ${status} for ${path}`);
    this.status = status;
  }
}
