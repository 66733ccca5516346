/**
 * A byte-bounded LRU cache of Orthanc's two slowest DICOMweb answers: series metadata (WADO-RS
 * `…/series/{uid}/metadata`, DICOM PS3.18 §10.4.1.1.2) and the default instance-level QIDO of a series
 * (`…/series/{uid}/instances`, PS3.18 §10.6). It holds only Orthanc's successful (200) answer for a series, stored
 * after the public-URL rewrite; that answer is the same for every caller allowed to see the study, so authorization
 * stays per request and before the cache (`authorizeStudy` / the QIDO plan).
 *
 * Entries are dropped by study UID when the facade sees a change ({@link onStudyContentChanged}), and expire after a
 * TTL as a safety net for changes made in Orthanc behind the facade's back. A fetch that started before an
 * invalidation of its study is never stored after it (generation check). Other replicas' changes arrive through
 * src/dicomweb/cache/study-change-listener.ts; while that signal is down the cache is {@link SeriesCache.suspend}ed.
 *
 * Single flight for warm-ups ({@link SeriesCache.fill}, src/dicomweb/qido/metadata-prefetch.ts): a request for a key being
 * filled waits for that fill ({@link SeriesCache.pending}) instead of asking Orthanc a second time, then reads the
 * cache as usual, so it gets the fill's answer only if the same generation check let it be stored. Relayed misses
 * announce themselves ({@link SeriesCache.relaying}) so that a warm-up does not ask for what is already on its way.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { type CacheTicket, InvalidatableCache } from './invalidatable-cache.ts';

export type SeriesAnswerKind = 'metadata' | 'instances';

export interface SeriesCacheKey {
  study: string;
  series: string;
  kind: SeriesAnswerKind;
  /** The Accept header forwarded to Orthanc (it can change the body); '' when fixed by the facade. */
  accept: string;
  /** The public DICOMweb root the answer's URLs point at. */
  publicRoot: string;
  /**
   * The linked Orthanc studies (their ids) the answer was filtered to, for restricted callers
   * (src/dicomweb/access/linked-orthanc-studies.ts); absent for Orthanc's unfiltered answer.
   */
  linkedTo?: string | undefined;
}

export interface CachedAnswer {
  /** The headers the client got on the miss (content-type, content-length...). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface SeriesCacheOptions {
  /** Total bytes kept (bodies + headers + keys); 0 disables the cache. */
  maxBytes: number;
  /** Lifetime of an entry in ms; 0 disables the cache. */
  ttlMs: number;
  /** Answers larger than this are streamed through uncached. */
  maxEntryBytes: number;
  now?: () => number;
}

export interface SeriesCacheStats {
  hits: number;
  misses: number;
  stored: number;
  /** Answers not stored: too large, invalidated while in flight, or the cache is off. */
  skipped: number;
  invalidations: number;
  /** Requests that waited for a fill in flight instead of asking Orthanc (their answer then counts as hit or miss). */
  joined: number;
}

/** A ticket taken before asking Orthanc; storing with a stale ticket is refused. */
export type FetchTicket = CacheTicket;

/** The key string of an answer (NUL-separated: none of the parts can contain NUL). */
export function seriesCacheKey(k: SeriesCacheKey): string {
  const parts = [k.kind, k.study, k.series, k.accept, k.publicRoot];
  // A filtered answer's key has one part more: it never equals an unfiltered answer's key.
  if (k.linkedTo !== undefined) parts.push(k.linkedTo);
  return parts.join('\u0000');
}

export class SeriesCache {
  readonly #opts: Required<SeriesCacheOptions>;
  /** The answers, by key, grouped by study; byte-bounded, least recently used dropped first. */
  readonly #cache: InvalidatableCache<CachedAnswer>;
  /** Relayed misses in flight ({@link relaying}), by key: how many. */
  readonly #relayed = new Map<string, number>();
  readonly stats: SeriesCacheStats = { hits: 0, misses: 0, stored: 0, skipped: 0, invalidations: 0, joined: 0 };

  constructor(opts: SeriesCacheOptions) {
    this.#opts = { now: Date.now, ...opts };
    this.#cache = new InvalidatableCache<CachedAnswer>({
      ttlMs: this.#opts.ttlMs,
      maxWeight: this.#opts.maxBytes,
      weigh: entrySize,
      whenFull: 'lru',
      now: this.#opts.now,
    });
  }

  /** Drops the expired answers (their memory goes back at once, not when the bound pushes them out). */
  sweep(): number {
    return this.#cache.sweep();
  }

  get enabled(): boolean {
    return !this.#cache.suspended && this.#opts.maxBytes > 0 && this.#opts.ttlMs > 0 && this.#opts.maxEntryBytes > 0;
  }

  get maxEntryBytes(): number {
    return Math.min(this.#opts.maxEntryBytes, this.#opts.maxBytes);
  }

  /** Bytes currently held. */
  get bytes(): number {
    return this.#cache.weight;
  }

  get size(): number {
    return this.#cache.size;
  }

  /**
   * Stops serving and storing, and drops everything (answers still being fetched included): the change signal is
   * down, so entries could go stale unseen. Until {@link resume}.
   */
  suspend(): void {
    this.stats.invalidations++;
    this.#cache.suspend();
  }

  /** Serves and stores again, from empty: nothing fetched before this call is stored. */
  resume(): void {
    this.stats.invalidations++;
    this.#cache.resume();
  }

  /** The cached answer (and marks it most recently used), or undefined; counts a hit or a miss. */
  get(key: string): CachedAnswer | undefined {
    if (this.#cache.suspended) return undefined;
    const answer = this.#cache.get(key);
    if (answer) this.stats.hits++;
    else this.stats.misses++;
    return answer;
  }

  /** Is a live answer cached under `key`? (No recency or hit/miss accounting: for warm-ups.) */
  has(key: string): boolean {
    return this.#cache.has(key);
  }

  /**
   * Fetches the answer for `key` once and stores it under a ticket taken now ({@link put}: the same generation check
   * as every fill). Until it settles, {@link pending} hands it to requests for the same key. Not started (undefined)
   * when the cache is off, the key is cached, or a fill or relayed miss for it is in flight. The promise tells
   * whether the answer was stored; it rejects with `fetch`'s error.
   */
  fill(key: string, study: string, fetch: () => Promise<CachedAnswer | undefined>): Promise<boolean> | undefined {
    if (!this.enabled || this.has(key) || this.pending(key, false) || this.#relayed.has(key)) return undefined;
    const ticket = this.ticket(study);
    return this.#cache.fly(key, ticket, async () => {
      const answer = await fetch();
      return answer !== undefined && this.put(key, ticket, answer);
    });
  }

  /**
   * The fill in flight for `key` (resolves when it settled, never rejects), unless its study was invalidated since it
   * started (its answer will not be stored, so waiting would be for nothing). `join` counts the wait in the stats.
   */
  pending(key: string, join = true): Promise<void> | undefined {
    const flight = this.#cache.flight(key);
    if (!flight) return undefined;
    if (join) this.stats.joined++;
    return flight.settled;
  }

  /** Announces a relayed miss for `key` (a fill will not ask for it too); call the returned function when it ends. */
  relaying(key: string): () => void {
    this.#relayed.set(key, (this.#relayed.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#relayed.get(key) ?? 1) - 1;
      if (n > 0) this.#relayed.set(key, n);
      else this.#relayed.delete(key);
    };
  }

  /** Take before asking Orthanc for an answer of `study`. */
  ticket(study: string): FetchTicket {
    return this.#cache.ticket(study);
  }

  /** Stores an answer fetched under `ticket`; refused when too large, off, or the study changed meanwhile. */
  put(key: string, ticket: FetchTicket, answer: CachedAnswer): boolean {
    if (!this.enabled || answer.body.length > this.maxEntryBytes || !this.#cache.put(key, ticket, answer)) {
      this.stats.skipped++;
      return false;
    }
    this.stats.stored++;
    return true;
  }

  /** Drops every answer of `study` (all studies when undefined), including answers still being fetched. */
  invalidate(study?: string): void {
    this.stats.invalidations++;
    this.#cache.invalidate(study);
  }
}

function entrySize(key: string, answer: CachedAnswer): number {
  let n = answer.body.length + key.length;
  for (const [h, v] of Object.entries(answer.headers)) n += h.length + v.length;
  return n;
}

/**
 * A pass-through stream that keeps a copy of what flows through, up to `limit` bytes; past it the copy is dropped
 * (the stream goes on). `onComplete` gets the whole body only if the stream ended normally within the limit.
 */
export class CaptureStream extends Transform {
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;
  readonly #limit: number;
  readonly #onComplete: (body: Buffer) => void;

  constructor(limit: number, onComplete: (body: Buffer) => void) {
    super();
    this.#limit = limit;
    this.#onComplete = onComplete;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.#chunks) {
      this.#bytes += chunk.length;
      if (this.#bytes > this.#limit) this.#chunks = undefined;
      else this.#chunks.push(chunk);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.#chunks) this.#onComplete(Buffer.concat(this.#chunks, this.#bytes));
    this.#chunks = undefined;
    done();
  }
}
