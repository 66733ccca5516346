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
  /** Orthanc's own explanation, when its answer carried one. */
  readonly detail: string | undefined;
  constructor(status: number, path: string, detail?: string) {
    super(`Orthanc answered ${status} for ${path}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.detail = detail;
  }
}
