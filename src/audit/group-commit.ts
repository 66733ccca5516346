/**
 * Group commit: callers {@link GroupCommit.submit} items and wait; a single writer takes the queued items in batches
 * and hands each batch to one `flush` call (for the audit store: one transaction, one commit). A batch starts when
 * `maxBatch` items are queued or `maxWaitMs` after the first item arrived at an idle writer; items that arrive while
 * `maxInFlight` batches are being flushed form the next batch, started as soon as one of them settles. Every waiter of
 * a batch is settled together: resolved with its own result (in submission order) once `flush` succeeded, or rejected
 * with the batch's error. Flushes start strictly in submission order; with `maxInFlight` 1 (the default, needed by
 * the chain appender) one also ends before the next starts, with more (the outbox, whose flushes order their writes
 * themselves and overlap only the fdatasync) they overlap. Pure (no I/O of its own), unit-tested in
 * group-commit.test.ts.
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

export interface GroupCommitOptions {
  /** Most items in one batch; a full queue starts a batch at once. */
  readonly maxBatch: number;
  /** How long the first item waits for company at an idle writer (0: the next turn of the event loop). */
  readonly maxWaitMs: number;
  /** Most flushes running at once (default 1). */
  readonly maxInFlight?: number;
}

/** The writer was closed: no more items are accepted. */
export class GroupCommitClosedError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_GROUP_COMMIT_CLOSED';
  constructor() {
    super('group commit writer is closed');
    this.name = 'GroupCommitClosedError';
  }
}

/** `flush` gave a different number of results than it was given items (a bug in the flush function). */
export class GroupCommitResultError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_GROUP_COMMIT_RESULT';
  constructor(expected: number, got: number) {
    super(`group commit flush returned ${got} results for ${expected} items`);
    this.name = 'GroupCommitResultError';
  }
}

interface Waiter<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit<T, R> {
  readonly #flush: (items: readonly T[]) => Promise<readonly R[]>;
  readonly #opts: GroupCommitOptions;
  #queue: Waiter<T, R>[] = [];
  /** The pending start of a batch at an idle writer, and how to cancel it. */
  #timer: (() => void) | undefined;
  /** The flushes running now. */
  readonly #running = new Set<Promise<void>>();
  readonly #maxInFlight: number;
  #closed = false;

  constructor(flush: (items: readonly T[]) => Promise<readonly R[]>, opts: GroupCommitOptions) {
    if (!(opts.maxBatch >= 1)) throw new RangeError('maxBatch must be at least 1');
    if (!(opts.maxWaitMs >= 0)) throw new RangeError('maxWaitMs must not be negative');
    this.#maxInFlight = opts.maxInFlight ?? 1;
    if (!(this.#maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    this.#flush = flush;
    this.#opts = opts;
  }

  /** Items waiting for a batch (not counting the one being flushed). */
  get pending(): number {
    return this.#queue.length;
  }

  /** Queues `item`; settles when its batch has been flushed (or failed). */
  submit(item: T): Promise<R> {
    if (this.#closed) return Promise.reject(new GroupCommitClosedError());
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  /** Stops accepting items and waits until every queued item is flushed. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#running.size || this.#queue.length) {
      if (this.#running.size < this.#maxInFlight && this.#queue.length) this.#start();
      await Promise.race(this.#running);
    }
  }

  #schedule(): void {
    if (this.#running.size >= this.#maxInFlight) return; // a running batch starts the next one when it settles
    if (this.#queue.length >= this.#opts.maxBatch || this.#closed) {
      this.#start();
      return;
    }
    if (this.#timer !== undefined) return;
    const fire = () => {
      this.#timer = undefined;
      if (this.#running.size < this.#maxInFlight && this.#queue.length) this.#start();
    };
    if (this.#opts.maxWaitMs > 0) {
      const t = setTimeout(fire, this.#opts.maxWaitMs);
      this.#timer = () => clearTimeout(t);
    } else {
      const t = setImmediate(fire);
      this.#timer = () => clearImmediate(t);
    }
  }

  #start(): void {
    this.#timer?.();
    this.#timer = undefined;
    const batch = this.#queue.splice(0, this.#opts.maxBatch);
    const running: Promise<void> = this.#run(batch).finally(() => {
      this.#running.delete(running);
      // Items that queued up during the flush have waited long enough: start their batch at once.
      if (this.#queue.length && this.#running.size < this.#maxInFlight) this.#start();
    });
    this.#running.add(running);
  }

  async #run(batch: readonly Waiter<T, R>[]): Promise<void> {
    let results: readonly R[];
    try {
      results = await this.#flush(batch.map((w) => w.item));
      if (results.length !== batch.length) throw new GroupCommitResultError(batch.length, results.length);
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      w.resolve(results[i] as R);
    });
  }
}
