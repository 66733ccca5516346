/**
 * The resolved caller per bearer token, so that the many requests of one session (a viewer sends dozens per study)
 * need neither a signature check nor a database round trip. Pure (no I/O); the access plugin feeds it and the
 * {@link AuthChangeListener} drops it.
 *
 * Correctness rules:
 * - Keyed by the SHA-256 of the raw token string: a cached caller is only ever returned for the very same token.
 * - An entry lives until `min(token exp, stored + ttl)`; the TTL is the safety net behind invalidation.
 * - Only successes are stored (the caller decides what to store; failures never reach {@link CallerCache.set}).
 * - {@link CallerCache.clear} drops everything and starts a new generation: a resolution that began before the clear
 *   (it may have read the old state) is not stored afterwards.
 * - Disabled until the invalidation channel is up and whenever it is lost (no caching rather than stale caching).
 * - Bounded: least recently used entries are evicted beyond `maxEntries`.
 */
import { createHash } from 'node:crypto';

export interface CallerCacheOptions {
  /** Longest life of an entry in ms; 0 turns the cache off. */
  readonly ttlMs: number;
  readonly maxEntries: number;
  /** Clock in ms (tests). */
  readonly now?: () => number;
}

/** The cache key of a token: its SHA-256 (the token itself is never kept). */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
}

export class CallerCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  #generation = 0;
  #enabled = false;
  #waiters: (() => void)[] = [];

  constructor(opts: CallerCacheOptions) {
    this.#ttlMs = opts.ttlMs;
    this.#maxEntries = Math.max(1, opts.maxEntries);
    this.#now = opts.now ?? Date.now;
  }

  /** True when entries may be read and stored (configured on and the invalidation channel is up). */
  get enabled(): boolean {
    return this.#enabled && this.#ttlMs > 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The current generation; pass it to {@link set} to store only if nothing was invalidated in between. */
  get generation(): number {
    return this.#generation;
  }

  get(key: string): V | undefined {
    if (!this.enabled) return undefined;
    const e = this.#entries.get(key);
    if (!e) return undefined;
    this.#entries.delete(key);
    if (e.expiresAt <= this.#now()) return undefined;
    this.#entries.set(key, e); // most recently used last
    return e.value;
  }

  /**
   * Stores a successfully resolved caller until `min(expMs, now + ttl)`. Ignored when disabled, when the token is
   * already expired, or when the cache was cleared since `generation` was taken.
   */
  set(key: string, value: V, expMs: number, generation: number): void {
    if (!this.enabled || generation !== this.#generation) return;
    const now = this.#now();
    const expiresAt = Math.min(expMs, now + this.#ttlMs);
    if (!(expiresAt > now)) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Drops every entry (something a caller's resolution reads has changed). */
  clear(): void {
    this.#entries.clear();
    this.#generation++;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Starts caching (the invalidation channel is listening); starts from empty. */
  enable(): void {
    this.clear();
    this.#enabled = true;
  }

  /** Stops caching and drops everything (the invalidation channel is lost). */
  disable(): void {
    this.#enabled = false;
    this.clear();
  }

  /** Resolves at the next {@link clear} (tests wait for an invalidation to arrive). */
  nextClear(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
