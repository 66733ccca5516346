import { ERROR_CODES, type ErrorCode } from './codes.ts';

export type { ErrorCode } from './codes.ts';

/**
 * The base of every error class of the facade: a stable `code` from the table in codes.ts and the HTTP status it
 * answers with as `statusCode` (the property name Fastify reads). A class whose status is chosen by the thrower sets
 * {@link EhrError.httpStatus}; every other class takes the status from the table.
 */
export abstract class EhrError extends Error {
  abstract readonly code: ErrorCode;
  /** The status given by the thrower, for classes marked `varies` in the table. */
  protected httpStatus: number | undefined;

  get statusCode(): number {
    return this.httpStatus ?? ERROR_CODES[this.code].statusCode;
  }
}

export function isEhrError(err: unknown): err is EhrError {
  return err instanceof EhrError;
}
