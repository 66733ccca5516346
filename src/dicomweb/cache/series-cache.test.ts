import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, test } from 'vitest';
import { CaptureStream, type SeriesAnswerKind, SeriesCache, seriesCacheKey } from './series-cache.ts';

const key = (study: string, series = 's1', kind: SeriesAnswerKind = 'metadata', accept = '', root = 'https://a/dw') =>
  seriesCacheKey({ study, series, kind, accept, publicRoot: root });
const answer = (bytes: number, fill = 'x') => ({
  headers: { 'content-type': 'application/dicom+json' },
  body: Buffer.alloc(bytes, fill),
});

function cache(opts: { maxBytes?: number; ttlMs?: number; maxEntryBytes?: number } = {}) {
  let now = 1000;
  const c = new SeriesCache({
    maxBytes: opts.maxBytes ?? 10_000,
    ttlMs: opts.ttlMs ?? 60_000,
    maxEntryBytes: opts.maxEntryBytes ?? 4_000,
    now: () => now,
  });
  return { c, advance: (ms: number) => (now += ms) };
}

describe('SeriesCache', () => {
  test.each([
    ['metadata vs instances', key('st', 's1', 'metadata'), key('st', 's1', 'instances')],
    ['series', key('st', 's1'), key('st', 's2')],
    ['study', key('st1'), key('st2')],
    ['Accept', key('st', 's1', 'metadata', 'application/dicom+json'), key('st', 's1', 'metadata', '')],
    ['public root', key('st', 's1', 'metadata', '', 'https://a/dw'), key('st', 's1', 'metadata', '', 'https://b/dw')],
  ])('keys differ by %s and never share an answer', (_what, k1, k2) => {
    const { c } = cache();
    expect(k1).not.toBe(k2);
    c.put(k1, c.ticket('st'), answer(10, 'a'));
    expect(c.get(k2)).toBeUndefined();
    expect(c.get(k1)?.body.toString()).toBe('a'.repeat(10));
  });

  test.each([
    // [ttl, advance, expected hit]
    [1000, 999, true],
    [1000, 1000, false],
    [1000, 5000, false],
  ])('TTL %i ms, read after %i ms: hit=%s', (ttlMs, after, hit) => {
    const { c, advance } = cache({ ttlMs });
    c.put(key('st'), c.ticket('st'), answer(10));
    advance(after);
    expect(c.get(key('st')) !== undefined).toBe(hit);
    if (!hit) expect(c.bytes).toBe(0);
  });

  test.each([
    [100, 100, true],
    [100, 101, false],
  ])('per-entry limit %i: a body of %i bytes stored=%s', (maxEntryBytes, bytes, stored) => {
    const { c } = cache({ maxEntryBytes });
    expect(c.put(key('st'), c.ticket('st'), answer(bytes))).toBe(stored);
    expect(c.get(key('st')) !== undefined).toBe(stored);
  });

  test('LRU by bytes: the least recently used entries go first, the total stays under the bound', () => {
    const k = (i: number) => key('st', `s${i}`);
    const size = answer(300).body.length + k(0).length + 'content-type'.length + 'application/dicom+json'.length;
    const { c } = cache({ maxBytes: size * 3, maxEntryBytes: 1000 });
    for (const i of [0, 1, 2]) c.put(k(i), c.ticket('st'), answer(300));
    expect(c.bytes).toBe(size * 3);
    c.get(k(0)); // 0 becomes most recent; 1 is now the oldest
    c.put(k(3), c.ticket('st'), answer(300));
    expect([0, 1, 2, 3].map((i) => c.get(k(i)) !== undefined)).toEqual([true, false, true, true]);
    expect(c.bytes).toBeLessThanOrEqual(size * 3);
  });

  test.each([
    ['study A', 'A', [false, false, true]],
    ['every study', undefined, [false, false, false]],
  ])('invalidating %s drops exactly its answers', (_w, study, expected) => {
    const { c } = cache();
    c.put(key('A', 's1', 'metadata'), c.ticket('A'), answer(10));
    c.put(key('A', 's1', 'instances'), c.ticket('A'), answer(10));
    c.put(key('B', 's1', 'metadata'), c.ticket('B'), answer(10));
    c.invalidate(study);
    const seen = [key('A', 's1', 'metadata'), key('A', 's1', 'instances'), key('B', 's1', 'metadata')].map(
      (k) => c.get(k) !== undefined,
    );
    expect(seen).toEqual(expected);
  });

  test.each([
    ['the same study', 'A', false],
    ['another study', 'B', true],
    ['every study', undefined, false],
  ])('an answer fetched before invalidating %s is stored=%s', (_w, study, stored) => {
    const { c } = cache();
    const ticket = c.ticket('A');
    c.invalidate(study);
    expect(c.put(key('A'), ticket, answer(10))).toBe(stored);
    expect(c.put(key('A', 's2'), c.ticket('A'), answer(10))).toBe(true);
  });

  test.each([
    { maxBytes: 0, ttlMs: 1000 },
    { maxBytes: 1000, ttlMs: 0 },
  ])('disabled with %o', (opts) => {
    const { c } = cache(opts);
    expect(c.enabled).toBe(false);
    expect(c.put(key('st'), c.ticket('st'), answer(1))).toBe(false);
    expect(c.get(key('st'))).toBeUndefined();
  });
});

describe('CaptureStream', () => {
  test.each([
    [[3, 3, 4], 10, true],
    [[3, 3, 5], 10, false],
    [[], 10, true],
  ])('chunks %o with limit %i: copy kept=%s, all bytes pass', async (sizes, limit, kept) => {
    const chunks = sizes.map((n, i) => Buffer.alloc(n, String(i)));
    let captured: Buffer | undefined;
    const out: Buffer[] = [];
    await pipeline(Readable.from(chunks), new CaptureStream(limit, (b) => (captured = b)), async (src) => {
      for await (const c of src) out.push(c as Buffer);
    });
    expect(Buffer.concat(out)).toEqual(Buffer.concat(chunks));
    expect(captured).toEqual(kept ? Buffer.concat(chunks) : undefined);
  });
});

/** A fetch the test resolves or rejects when it wants. */
function deferredFetch() {
  let resolve!: (a: ReturnType<typeof answer> | undefined) => void;
  let reject!: (e: Error) => void;
  let calls = 0;
  const promise = new Promise<ReturnType<typeof answer> | undefined>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    fetch: () => {
      calls++;
      return promise;
    },
    resolve,
    reject,
    calls: () => calls,
  };
}

describe('SeriesCache fill (single flight for warm-ups)', () => {
  test.each<[string, boolean, (c: SeriesCache) => void]>([
    ['nothing', true, () => undefined],
    ['another study is invalidated', true, (c) => c.invalidate('B')],
    ['its study is invalidated', false, (c) => c.invalidate('A')],
    ['every study is invalidated', false, (c) => c.invalidate()],
    [
      'the change signal goes down and up again',
      false,
      (c) => {
        c.suspend();
        c.resume();
      },
    ],
  ])(
    'while a fill is in flight %s: stored=%s, and a request waiting for it gets the answer only if stored',
    async (_w, stored, during) => {
      const { c } = cache();
      const f = deferredFetch();
      const filling = c.fill(key('A'), 'A', f.fetch);
      expect(filling).toBeDefined();
      const joined = c.pending(key('A'));
      expect(joined).toBeDefined();
      during(c);
      // A request arriving after an invalidation does not wait for an answer that cannot be stored.
      expect(c.pending(key('A')) !== undefined).toBe(stored);
      f.resolve(answer(10, 'm'));
      expect(await filling).toBe(stored);
      await joined;
      expect(c.get(key('A'))?.body.toString()).toBe(stored ? 'm'.repeat(10) : undefined);
      expect(f.calls()).toBe(1);
    },
  );

  test.each<[string, (c: SeriesCache) => void]>([
    ['the key is cached', (c) => c.put(key('A'), c.ticket('A'), answer(10))],
    ['a fill for the key is in flight', (c) => c.fill(key('A'), 'A', () => new Promise(() => undefined))],
    ['a relayed miss for the key is in flight', (c) => c.relaying(key('A'))],
    ['the cache is suspended', (c) => c.suspend()],
  ])('a fill does not start when %s', (_w, before) => {
    const { c } = cache();
    before(c);
    const f = deferredFetch();
    expect(c.fill(key('A'), 'A', f.fetch)).toBeUndefined();
    expect(f.calls()).toBe(0);
  });

  test.each([
    [1, 1, false],
    [2, 1, true],
    [2, 2, false],
  ])('%i relayed misses, %i ended: a fill still held back=%s', (started, ended, held) => {
    const { c } = cache();
    const releases = Array.from({ length: started }, () => c.relaying(key('A')));
    for (const r of releases.slice(0, ended)) {
      r();
      r(); // releasing twice counts once
    }
    expect(c.fill(key('A'), 'A', () => Promise.resolve(answer(1))) === undefined).toBe(held);
  });

  test.each([
    ['fails', (f: ReturnType<typeof deferredFetch>) => f.reject(new Error('down')), 'rejects'],
    ['finds nothing cacheable', (f: ReturnType<typeof deferredFetch>) => f.resolve(undefined), 'resolves'],
  ])('a fill that %s frees the key: waiters go on, the next fill starts', async (_w, end, outcome) => {
    const { c } = cache();
    const f = deferredFetch();
    const filling = c.fill(key('A'), 'A', f.fetch) as Promise<boolean>;
    const joined = c.pending(key('A'));
    end(f);
    if (outcome === 'rejects') await expect(filling).rejects.toThrow('down');
    else expect(await filling).toBe(false);
    await joined;
    expect(c.pending(key('A'))).toBeUndefined();
    expect(c.fill(key('A'), 'A', () => Promise.resolve(answer(1)))).toBeDefined();
  });

  test('a fill started after an invalidation replaces the stale one, which cannot end it', async () => {
    const { c } = cache();
    const stale = deferredFetch();
    const first = c.fill(key('A'), 'A', stale.fetch) as Promise<boolean>;
    c.invalidate('A');
    const fresh = deferredFetch();
    const second = c.fill(key('A'), 'A', fresh.fetch) as Promise<boolean>;
    expect(second).toBeDefined();
    stale.resolve(answer(10, 'o'));
    expect(await first).toBe(false);
    const joined = c.pending(key('A'));
    expect(joined).toBeDefined(); // still the fresh fill's
    fresh.resolve(answer(10, 'n'));
    expect(await second).toBe(true);
    await joined;
    expect(c.get(key('A'))?.body.toString()).toBe('n'.repeat(10));
  });

  test('joining counts in the stats; has() neither counts nor reorders', async () => {
    const { c } = cache();
    const f = deferredFetch();
    const filling = c.fill(key('A'), 'A', f.fetch);
    expect(c.has(key('A'))).toBe(false);
    c.pending(key('A'));
    c.pending(key('A'), false);
    f.resolve(answer(5));
    await filling;
    expect(c.has(key('A'))).toBe(true);
    expect([c.stats.joined, c.stats.hits, c.stats.misses]).toEqual([1, 0, 0]);
  });
});
