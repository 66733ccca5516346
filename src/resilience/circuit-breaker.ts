/**
 * A circuit breaker per dependency (Orthanc, the EHR database). It opens on the first fault that says the dependency
 * is gone (a refused or reset connection, or no answer within the time-out: a hung process, e.g. SIGSTOP), so that
 * the requests that follow fail at once instead of each waiting the full upstream time-out.
 *
 * While open, callers get {@link DependencyUnavailableError} (the routes answer 503 with `Retry-After`). After
 * `retryMs` the breaker goes half-open and runs one probe (`probe`, e.g. Orthanc `GET /system` or `SELECT 1`) in the
 * background; normal requests keep failing fast meanwhile. A successful probe closes the breaker; a failed one opens it
 * again for twice as long, up to `maxRetryMs`. A probe, not a client request, is the trial call: no client pays a
 * time-out to find out whether the dependency is back.
 *
 * While closed, the same probe also runs every `heartbeatMs` (when set): a dependency that hangs (SIGSTOP, a wedged
 * database) is noticed within `heartbeatMs` plus two probe time-outs (a failed probe is confirmed by a second one)
 * even when no request is failing yet, so that requests arriving later fail fast instead of each waiting the full
 * upstream time-out.
 *
 * Pure apart from timers (injected `setTimer` for tests); no I/O of its own.
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** A dependency's breaker is open: the request was not attempted. */
export class DependencyUnavailableError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DEPENDENCY_UNAVAILABLE';
  override name = 'DependencyUnavailableError';
  /** Which dependency: `orthanc` or `database`. */
  readonly dependency: string;
  /** Seconds after which a retry may succeed (`Retry-After`, RFC 9110 §10.2.3). */
  readonly retryAfterSeconds: number;
  constructor(dependency: string, retryAfterSeconds: number, reason: string) {
    // Reasons from the dependency's own client may already say "<dependency> unavailable: ...".
    const plain = reason.replace(new RegExp(`^(heartbeat: )?${dependency} unavailable: `, 'i'), '$1');
    super(`${dependency} unavailable: ${plain}`);
    this.dependency = dependency;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface BreakerOptions {
  name: string;
  /** Checks whether the dependency answers again; resolves when it does. Bounded by its own time-out. */
  probe: () => Promise<unknown>;
  /** First wait before a probe, after opening. */
  retryMs: number;
  /** Longest wait between probes (the wait doubles after each failed probe). */
  maxRetryMs: number;
  /** While closed, probe this often and open on two failed probes in a row; 0 or absent: no heartbeat. */
  heartbeatMs?: number;
  /** Told about every state change (for logs). */
  onChange?: (state: BreakerState, reason: string) => void;
  /** Timers (tests inject fakes); default setTimeout, unref'd so that a breaker never keeps the process alive. */
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
  now?: () => number;
}

export interface BreakerSnapshot {
  state: BreakerState;
  /** Why it opened (the last fault), while not closed. */
  reason?: string;
  /** How many times it has opened since start. */
  opened: number;
  retryAfterSeconds?: number;
}

const defaultTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

export class CircuitBreaker {
  readonly name: string;
  #state: BreakerState = 'closed';
  #reason = '';
  #opened = 0;
  #waitMs: number;
  #nextProbeAt = 0;
  #timer: { cancel(): void } | undefined;
  #closed = false;
  readonly #opts: Required<Omit<BreakerOptions, 'onChange'>> & Pick<BreakerOptions, 'onChange'>;

  constructor(opts: BreakerOptions) {
    this.name = opts.name;
    this.#opts = { setTimer: defaultTimer, now: Date.now, heartbeatMs: 0, ...opts };
    this.#waitMs = opts.retryMs;
    this.#heartbeat();
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Throws {@link DependencyUnavailableError} unless the breaker is closed. Call before using the dependency. */
  check(): void {
    if (this.#state === 'closed') return;
    throw new DependencyUnavailableError(this.name, this.retryAfterSeconds(), this.#reason);
  }

  /** Seconds until the next probe (at least 1). */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.#nextProbeAt - this.#opts.now()) / 1000));
  }

  /** The dependency answered (any answer, even an HTTP error, shows it is alive). */
  success(): void {
    if (this.#state === 'closed') return;
    // A request that started before the breaker opened and still got an answer: the dependency is back.
    this.#close('answered');
  }

  /** The dependency is gone (refused, reset, time-out): opens the breaker. */
  failure(reason: string): void {
    if (this.#state !== 'closed') return;
    this.#waitMs = this.#opts.retryMs;
    this.#open(reason);
  }

  snapshot(): BreakerSnapshot {
    return this.#state === 'closed'
      ? { state: 'closed', opened: this.#opened }
      : { state: this.#state, reason: this.#reason, opened: this.#opened, retryAfterSeconds: this.retryAfterSeconds() };
  }

  /** Stops the probe timer (app shutdown). */
  stop(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #open(reason: string): void {
    this.#state = 'open';
    this.#reason = reason;
    this.#opened++;
    this.#opts.onChange?.('open', reason);
    this.#schedule();
  }

  #schedule(): void {
    this.#timer?.cancel();
    if (this.#closed) return;
    this.#nextProbeAt = this.#opts.now() + this.#waitMs;
    this.#timer = this.#opts.setTimer(() => void this.#probe(), this.#waitMs);
  }

  async #probe(): Promise<void> {
    this.#timer = undefined;
    if (this.#state !== 'open' || this.#closed) return;
    this.#state = 'half-open';
    this.#opts.onChange?.('half-open', this.#reason);
    try {
      await this.#opts.probe();
      if (this.#state === 'half-open') this.#close('probe answered');
    } catch (err) {
      if (this.#state !== 'half-open') return;
      this.#state = 'open';
      this.#reason = (err as Error).message || this.#reason;
      this.#waitMs = Math.min(this.#waitMs * 2, this.#opts.maxRetryMs);
      this.#opts.onChange?.('open', this.#reason);
      this.#schedule();
    }
  }

  #close(reason: string): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#state = 'closed';
    this.#reason = '';
    this.#waitMs = this.#opts.retryMs;
    this.#opts.onChange?.('closed', reason);
    this.#heartbeat();
  }

  /** While closed: the next heartbeat probe; two failed in a row open the breaker. */
  #heartbeat(): void {
    if (!this.#opts.heartbeatMs || this.#closed) return;
    this.#timer?.cancel();
    this.#timer = this.#opts.setTimer(async () => {
      this.#timer = undefined;
      if (this.#state !== 'closed' || this.#closed) return;
      try {
        await this.#opts.probe();
      } catch {
        // A probe also times out when this process itself stalled (a blocked event loop fires every timer late, before
        // the answers waiting on the socket are read): a second probe at once confirms the failure before opening.
        try {
          await this.#opts.probe();
        } catch (err) {
          if (this.#state === 'closed') this.failure(`heartbeat: ${(err as Error).message}`);
          return;
        }
      }
      if (this.#state === 'closed') this.#heartbeat();
    }, this.#opts.heartbeatMs);
  }
}
