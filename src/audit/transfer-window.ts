/**
 * Transfer windows: one "DICOM Instances Transferred" record per study transfer, not one per request. DICOM PS3.15
 * A.5.3.4 (https://dicom.nema.org/medical/dicom/current/output/html/part15.html#sect_A.5.3.4) describes one message
 * per transfer of a study's instances; a viewer opening a study sends one WADO-RS request per frame.
 *
 * A caller's successful retrievals of one study within `windowMs` of the first form one window:
 * - the first retrieval opens it, and its own event is made durable before its response completes (the plugin);
 * - later ones join it: they wait for that first event if it is not durable yet, and are only counted here
 *   (requests, instances, series, frames, bytes, first and last time);
 * - when the window ends (its time is up, too many windows are open, or the process shuts down) and more than one
 *   retrieval joined, `onClose` gets the tally, and the plugin writes it as a second event for the window.
 *
 * Pure apart from the timers (injected for tests); the key decides what "the same caller" means (the plugin keys by
 * the whole agent, the network address and the study).
 */

/** What one retrieval addressed, from its URL. */
export interface RetrievalFacts {
  readonly seriesUid?: string | undefined;
  readonly instanceUid?: string | undefined;
  /** Frames it asked for (`/frames/1,2,3` is 3); 0 for anything else. */
  readonly frames: number;
}

/** The totals of a window's retrievals, the first one included. */
export interface TransferTally {
  readonly retrievals: number;
  /** Distinct instances the retrievals addressed (study- and series-level retrievals name none). */
  readonly instances: number;
  /** Distinct series the retrievals addressed. */
  readonly series: number;
  readonly frames: number;
  /** Bytes sent to the client (response headers and body). */
  readonly bytes: number;
  /** ISO instants of the first and the last retrieval. */
  readonly start: string;
  readonly end: string;
}

/** One open window; `seed` is what the opener left to build the closing record from. */
export class TransferWindow<S> {
  readonly key: string;
  readonly seed: S;
  /** Settles when the opening retrieval's event is durable; rejects when it could not be stored. */
  readonly durable: Promise<unknown>;
  /** True once `durable` resolved: joiners then need not wait at all. */
  committed = false;
  /** Responses of this window still being sent: their byte counts are still to come. */
  inFlight = 0;
  /** No more joiners: the window ended and reports once the responses in flight have ended. */
  closing = false;
  #retrievals = 0;
  #frames = 0;
  #bytes = 0;
  readonly #instances = new Set<string>();
  readonly #series = new Set<string>();
  #first = 0;
  #last = 0;
  readonly opened: number;

  constructor(key: string, seed: S, durable: Promise<unknown>, opened: number) {
    this.key = key;
    this.seed = seed;
    this.durable = durable;
    this.opened = opened;
    durable.then(
      () => {
        this.committed = true;
      },
      () => undefined,
    );
  }

  /** Counts one retrieval at `at` (ms since the epoch). */
  add(facts: RetrievalFacts, at: number): void {
    if (this.#retrievals === 0) this.#first = at;
    this.#retrievals++;
    this.#last = Math.max(this.#last, at);
    this.#frames += facts.frames;
    if (facts.seriesUid) this.#series.add(facts.seriesUid);
    if (facts.instanceUid) this.#instances.add(facts.instanceUid);
  }

  addBytes(n: number): void {
    if (Number.isFinite(n) && n > 0) this.#bytes += n;
  }

  get retrievals(): number {
    return this.#retrievals;
  }

  tally(): TransferTally {
    return {
      retrievals: this.#retrievals,
      instances: this.#instances.size,
      series: this.#series.size,
      frames: this.#frames,
      bytes: this.#bytes,
      start: new Date(this.#first).toISOString(),
      end: new Date(this.#last).toISOString(),
    };
  }
}

export interface TransferWindowsOptions<S> {
  /** How long a window stays open after its first retrieval. */
  readonly windowMs: number;
  /** Most windows open at once; opening one more ends the oldest. */
  readonly maxOpen: number;
  /** Gets every ended window in which more than one retrieval was counted. */
  readonly onClose: (w: TransferWindow<S>) => void;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => { unref?: () => unknown } | unknown;
}

export class TransferWindows<S> {
  readonly #open = new Map<string, TransferWindow<S>>();
  readonly #opts: TransferWindowsOptions<S>;
  readonly #now: () => number;

  constructor(opts: TransferWindowsOptions<S>) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#open.size;
  }

  now(): number {
    return this.#now();
  }

  /** The window a retrieval under `key` joins, if one is open and within its time. */
  current(key: string): TransferWindow<S> | undefined {
    const w = this.#open.get(key);
    if (!w) return undefined;
    if (this.#now() - w.opened < this.#opts.windowMs) return w;
    this.end(w);
    return undefined;
  }

  /**
   * Opens a window under `key` whose opening event becomes durable with `durable`. If that fails, the window is
   * forgotten (uncounted), so that the next retrieval records its own event again.
   */
  open(key: string, seed: S, durable: Promise<unknown>): TransferWindow<S> {
    const existing = this.#open.get(key);
    if (existing) this.end(existing);
    while (this.#open.size >= this.#opts.maxOpen) {
      const oldest = this.#open.values().next().value;
      if (!oldest) break;
      this.end(oldest);
    }
    const w = new TransferWindow(key, seed, durable, this.#now());
    this.#open.set(key, w);
    durable.catch(() => {
      if (this.#open.get(key) === w) this.#open.delete(key);
      w.closing = true;
    });
    const timer = (this.#opts.setTimer ?? setTimeout)(() => {
      if (this.#open.get(key) === w) this.end(w);
    }, this.#opts.windowMs) as { unref?: () => unknown } | undefined;
    timer?.unref?.();
    return w;
  }

  /** A response of `w` has ended, having sent `bytes`. */
  finished(w: TransferWindow<S>, bytes: number): void {
    w.addBytes(bytes);
    w.inFlight = Math.max(0, w.inFlight - 1);
    if (w.closing && w.inFlight === 0) this.#report(w);
  }

  /** Ends `w`: no more joiners; it reports now, or when its last response in flight ends. */
  end(w: TransferWindow<S>): void {
    if (this.#open.get(w.key) === w) this.#open.delete(w.key);
    if (w.closing) return;
    w.closing = true;
    if (w.inFlight === 0) this.#report(w);
    else this.#draining.add(w);
  }

  /**
   * Ends every window, open or waiting for its responses in flight, and reports each at once (shutdown). Resolves
   * when every report has been handed to `onClose` (a window whose opening event is still being written reports
   * once it is durable).
   */
  async endAll(): Promise<void> {
    for (const w of [...this.#open.values(), ...this.#draining]) {
      this.#open.delete(w.key);
      w.inFlight = 0;
      w.closing = false;
      this.end(w);
    }
    await Promise.allSettled([...this.#pending]);
  }

  readonly #draining = new Set<TransferWindow<S>>();
  readonly #reported = new WeakSet<TransferWindow<S>>();
  readonly #pending = new Set<Promise<unknown>>();

  #report(w: TransferWindow<S>): void {
    this.#draining.delete(w);
    if (this.#reported.has(w) || w.retrievals < 2) return;
    this.#reported.add(w);
    if (w.committed) {
      this.#opts.onClose(w);
      return;
    }
    // The opening event is still being written: report once it is durable (never, if it failed: the joiners failed
    // with it).
    const p = w.durable.then(
      () => this.#opts.onClose(w),
      () => undefined,
    );
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }
}
