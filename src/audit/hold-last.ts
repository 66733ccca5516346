/**
 * A streamed answer whose last chunk waits for a promise: every chunk passes through as it arrives except the most
 * recent one, which is held back; when the source ends, the held chunk is released only after `until` resolved. If
 * `until` rejects, the stream fails instead and the client never receives the last bytes, so the answer is never
 * complete (with Content-Length framing the client sees a truncated message; with chunked encoding no terminating
 * chunk). The audit plugin uses it to overlap the commit of a read's AuditEvent with the transfer of a streamed
 * body while keeping the guarantee that the event is durable before the response completes.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * The event of a streamed answer could not be stored, so the answer is withheld: a 503 when nothing was sent yet
 * (the error handlers of the scopes map it), otherwise the connection is cut before the last bytes.
 */
export class AuditUnavailableError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_UNAVAILABLE';
  override name = 'AuditUnavailableError';
  constructor(requestId: string, options?: ErrorOptions) {
    super(`audit record could not be stored; request id ${requestId}`, options);
  }
}

export class HoldLastChunk extends Transform {
  #held: Buffer | undefined;
  readonly #until: Promise<unknown>;
  readonly #requestId: string;

  constructor(until: Promise<unknown>, requestId: string) {
    super();
    this.#until = until;
    this.#requestId = requestId;
    // Never an unhandled rejection: the failure is reported through the stream when it ends.
    until.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const previous = this.#held;
    this.#held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    this.#until.then(
      () => cb(null, this.#held),
      (err: unknown) => cb(new AuditUnavailableError(this.#requestId, { cause: err })),
    );
  }
}
