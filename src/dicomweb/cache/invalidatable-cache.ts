/**
 * The one cache behind the DICOMweb side's caches of answers that can change (the series cache, the resource
 * membership of linked studies, the study index): entries with a lifetime, dropped by study when the facade sees a
 * change, never stored when they were read before such a change, and not kept at all while the change signal is down.
 *
 * - Lifetime: an entry expires `ttlMs` after it was stored; `ttlMs <= 0` stores nothing.
 * - Groups: an entry belongs to a group (a StudyInstanceUID) or to none. {@link invalidate} of a group drops that
 *   group's entries and every entry without a group (an answer about many studies, e.g. a patient's study list, may
 *   hold any of them); {@link invalidate} without a group drops everything.
 * - Invalidation guard: a {@link CacheTicket} is taken before reading the source; {@link put} refuses the answer when
 *   its ticket's group (for a ticket without a group: any group) was invalidated after the ticket was taken, so an
 *   answer read before a change is never stored after it.
 * - Suspension: while the change signal is down (src/dicomweb/cache/study-change-listener.ts) nothing is served or
 *   stored, since another replica's change could go unseen; {@link resume} starts again from empty, and nothing read
 *   before it is stored.
 * - Single flight: {@link fly} runs one read per key at a time; {@link flight} hands it to concurrent requests for the
 *   same key, unless its ticket went stale (its answer will not be stored, so waiting for it would be for nothing).
 * - Sweep: {@link sweep} drops the expired entries (the owner calls it from time to time).
 * - Bound: the total weight (default: 1 per entry) stays within `maxWeight`, either by dropping the least recently
 *   used entries (`whenFull: 'lru'`) or by dropping everything (`'clear'`, cheap for answers that are cheap to read).
 */

/** Taken before reading the source for an answer; an answer stored under a stale ticket is refused. */
export interface CacheTicket {
  /** The group whose invalidation makes the ticket stale; undefined: any invalidation does. */
  readonly group: string | undefined;
  readonly generation: number;
}

export interface InvalidatableCacheOptions<V> {
  /** Lifetime of an entry in ms; 0 or less stores nothing. */
  ttlMs: number;
  /** Bound on the total weight of the entries. */
  maxWeight: number;
  /** Weight of one entry (default 1: `maxWeight` is then a number of entries). */
  weigh?: ((key: string, value: V) => number) | undefined;
  /** What makes room when an entry does not fit: drop least recently used entries, or everything. */
  whenFull?: 'lru' | 'clear';
  now?: (() => number) | undefined;
}

/** A read in flight ({@link InvalidatableCache.fly}). */
export interface CacheFlight<T> {
  readonly ticket: CacheTicket;
  /** The read's outcome (rejects when the read failed). */
  readonly result: Promise<T>;
  /** Resolves once the read settled (never rejects). */
  readonly settled: Promise<void>;
}

interface Entry<V> {
  readonly value: V;
  readonly group: string | undefined;
  readonly weight: number;
  readonly expires: number;
}

/** Invalidation marks kept per group; past this, every older ticket counts as stale (safe, and bounded). */
const MAX_INVALIDATION_MARKS = 10_000;

export class InvalidatableCache<V> {
  readonly #ttlMs: number;
  readonly #maxWeight: number;
  readonly #weigh: (key: string, value: V) => number;
  readonly #whenFull: 'lru' | 'clear';
  readonly #now: () => number;
  /** Map iteration order = recency (oldest first). */
  readonly #entries = new Map<string, Entry<V>>();
  /** Keys by group; the keys of entries without a group under `undefined`. */
  readonly #byGroup = new Map<string | undefined, Set<string>>();
  #weight = 0;
  #generation = 0;
  /** Generation of the last invalidation of a group, for tickets in flight; bounded, see {@link invalidate}. */
  readonly #invalidatedAt = new Map<string, number>();
  #allInvalidatedAt = 0;
  #lastInvalidation = 0;
  #suspended = false;
  readonly #flights = new Map<string, CacheFlight<unknown>>();

  constructor(opts: InvalidatableCacheOptions<V>) {
    this.#ttlMs = opts.ttlMs;
    this.#maxWeight = opts.maxWeight;
    this.#weigh = opts.weigh ?? (() => 1);
    this.#whenFull = opts.whenFull ?? 'lru';
    this.#now = opts.now ?? (() => Date.now());
  }

  /** Is the cache suspended (nothing served or stored)? */
  get suspended(): boolean {
    return this.#suspended;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Total weight of the entries held. */
  get weight(): number {
    return this.#weight;
  }

  /** The live value under `key` (marked most recently used), or undefined (suspended, absent or expired). */
  get(key: string): V | undefined {
    if (this.#suspended) return undefined;
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires > this.#now()) {
      this.#entries.delete(key);
      this.#entries.set(key, e);
      return e.value;
    }
    this.#remove(key);
    return undefined;
  }

  /** Is a live value held under `key`? (No recency change.) */
  has(key: string): boolean {
    const e = this.#entries.get(key);
    return !this.#suspended && e !== undefined && e.expires > this.#now();
  }

  /**
   * Drops every expired entry; returns how many. Lookups drop an expired entry they meet, but one nobody asks for
   * again would otherwise hold its memory until the bound pushes it out.
   */
  sweep(): number {
    const now = this.#now();
    let dropped = 0;
    for (const [key, e] of this.#entries) {
      if (e.expires > now) continue;
      this.#remove(key);
      dropped++;
    }
    return dropped;
  }

  /** Take before reading the source; `group` undefined: any invalidation makes the ticket stale. */
  ticket(group?: string): CacheTicket {
    return { group, generation: this.#generation };
  }

  /** Was the ticket's group (or, for a ticket without a group, any group) invalidated after it was taken? */
  isStale(ticket: CacheTicket): boolean {
    if (this.#allInvalidatedAt > ticket.generation) return true;
    if (ticket.group === undefined) return this.#lastInvalidation > ticket.generation;
    return (this.#invalidatedAt.get(ticket.group) ?? -1) > ticket.generation;
  }

  /**
   * Stores a value read under `ticket`, in `group` (default: the ticket's). Refused (false) while suspended, with no
   * lifetime, with a stale ticket, or heavier than the whole cache.
   */
  put(key: string, ticket: CacheTicket, value: V, group: string | undefined = ticket.group): boolean {
    if (this.#suspended || this.#ttlMs <= 0 || this.isStale(ticket)) return false;
    const weight = this.#weigh(key, value);
    if (weight > this.#maxWeight) return false;
    this.#remove(key);
    if (this.#whenFull === 'clear' && this.#weight + weight > this.#maxWeight) this.#clear();
    this.#entries.set(key, { value, group, weight, expires: this.#now() + this.#ttlMs });
    const keys = this.#byGroup.get(group) ?? new Set<string>();
    this.#byGroup.set(group, keys);
    keys.add(key);
    this.#weight += weight;
    while (this.#weight > this.#maxWeight) this.#remove(this.#entries.keys().next().value as string);
    return true;
  }

  /** Drops `group`'s entries and those without a group (everything when undefined); reads in flight go stale. */
  invalidate(group?: string): void {
    this.#generation++;
    this.#lastInvalidation = this.#generation;
    if (group === undefined) {
      this.#allInvalidatedAt = this.#generation;
      this.#invalidatedAt.clear();
      this.#clear();
      return;
    }
    if (this.#invalidatedAt.size >= MAX_INVALIDATION_MARKS) {
      // Keeps the marks bounded: forgetting them is safe only by treating every older ticket as stale.
      this.#invalidatedAt.clear();
      this.#allInvalidatedAt = this.#generation;
    } else this.#invalidatedAt.set(group, this.#generation);
    for (const key of this.#byGroup.get(group) ?? []) this.#remove(key);
    for (const key of this.#byGroup.get(undefined) ?? []) this.#remove(key);
  }

  /** Stops serving and storing, and drops everything (reads in flight included), until {@link resume}. */
  suspend(): void {
    this.#suspended = true;
    this.invalidate();
  }

  /** Serves and stores again, from empty: nothing read before this call is stored. */
  resume(): void {
    this.invalidate();
    this.#suspended = false;
  }

  /** The read in flight for `key`, unless its ticket went stale since it started. */
  flight<T>(key: string): CacheFlight<T> | undefined {
    const f = this.#flights.get(key) as CacheFlight<T> | undefined;
    return f && !this.isStale(f.ticket) ? f : undefined;
  }

  /** Runs `read` as the read in flight for `key` (see {@link flight}) until it settles. */
  fly<T>(key: string, ticket: CacheTicket, read: () => Promise<T>): Promise<T> {
    let settle!: () => void;
    const flight = {
      ticket,
      settled: new Promise<void>((r) => (settle = r)),
      result: undefined as unknown as Promise<T>,
    };
    this.#flights.set(key, flight as CacheFlight<unknown>);
    flight.result = (async () => {
      try {
        return await read();
      } finally {
        if (this.#flights.get(key) === flight) this.#flights.delete(key);
        settle();
      }
    })();
    return flight.result;
  }

  #clear(): void {
    this.#entries.clear();
    this.#byGroup.clear();
    this.#weight = 0;
  }

  #remove(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#entries.delete(key);
    this.#weight -= e.weight;
    const keys = this.#byGroup.get(e.group);
    keys?.delete(key);
    if (keys?.size === 0) this.#byGroup.delete(e.group);
  }
}
