import { describe, expect, test } from 'vitest';
import { CallerCache, tokenKey } from './caller-cache.ts';

function cache(opts: { ttlMs?: number; maxEntries?: number; enabled?: boolean } = {}) {
  let t = 1_000_000;
  const c = new CallerCache<string>({ ttlMs: opts.ttlMs ?? 10_000, maxEntries: opts.maxEntries ?? 100, now: () => t });
  if (opts.enabled ?? true) c.enable();
  return { c, advance: (ms: number) => (t += ms), now: () => t };
}

describe('CallerCache expiry', () => {
  test.each([
    // [token exp relative to now (ms), time advanced before the read (ms), expected hit]
    ['before the TTL and exp', 60_000, 9_999, true],
    ['at the TTL', 60_000, 10_000, false],
    ['past the TTL, token still valid', 60_000, 10_001, false],
    ['token exp before the TTL: just before exp', 3_000, 2_999, true],
    ['token exp before the TTL: at exp', 3_000, 3_000, false],
    ['token already expired: never stored', 0, 0, false],
  ])('%s', (_name, expIn, advance, hit) => {
    const { c, advance: adv, now } = cache();
    c.set('k', 'caller', now() + expIn, c.generation);
    adv(advance);
    expect(c.get('k')).toBe(hit ? 'caller' : undefined);
  });
});

describe('CallerCache invalidation and fail safe', () => {
  test.each([
    ['clear() drops entries', (c: CallerCache<string>) => c.clear()],
    ['disable() drops entries', (c: CallerCache<string>) => c.disable()],
    ['enable() (re-established channel) starts from empty', (c: CallerCache<string>) => c.enable()],
  ])('%s', (_name, act) => {
    const { c, now } = cache();
    c.set('k', 'caller', now() + 60_000, c.generation);
    expect(c.get('k')).toBe('caller');
    act(c);
    expect(c.get('k')).toBeUndefined();
  });

  test.each([
    ['never enabled (channel not up)', { enabled: false, ttlMs: 10_000 }],
    ['ttl 0 (configured off)', { enabled: true, ttlMs: 0 }],
  ])('nothing is stored or served when %s', (_name, opts) => {
    const { c, now } = cache(opts);
    c.set('k', 'caller', now() + 60_000, c.generation);
    expect(c.enabled).toBe(false);
    expect(c.get('k')).toBeUndefined();
    expect(c.size).toBe(0);
  });

  test('a resolution that started before a clear is not stored after it', () => {
    const { c, now } = cache();
    const generation = c.generation;
    c.clear(); // e.g. a revocation arrives while the request was reading the database
    c.set('k', 'stale caller', now() + 60_000, generation);
    expect(c.get('k')).toBeUndefined();
    c.set('k', 'fresh caller', now() + 60_000, c.generation);
    expect(c.get('k')).toBe('fresh caller');
  });

  test('after disable nothing is served until enable, which starts empty', () => {
    const { c, now } = cache();
    c.disable();
    c.set('k', 'caller', now() + 60_000, c.generation);
    expect(c.get('k')).toBeUndefined();
    c.enable();
    expect(c.get('k')).toBeUndefined();
  });

  test('nextClear resolves at the next clear', async () => {
    const { c } = cache();
    let cleared = false;
    const p = c.nextClear().then(() => {
      cleared = true;
    });
    await Promise.resolve();
    expect(cleared).toBe(false);
    c.clear();
    await p;
    expect(cleared).toBe(true);
  });
});

describe('CallerCache LRU bound', () => {
  test.each([
    // [max entries, keys stored in order, key read after storing the first maxEntries, expected present keys]
    [2, ['a', 'b', 'c'], undefined, ['b', 'c']],
    [2, ['a', 'b', 'c'], 'a', ['a', 'c']],
    [3, ['a', 'b', 'c', 'd', 'e'], 'b', ['b', 'd', 'e']],
    [1, ['a', 'b'], undefined, ['b']],
  ])('max %i, stored %j, touched %s → %j', (max, keys, touched, present) => {
    const { c, now } = cache({ maxEntries: max });
    keys.forEach((k, i) => {
      if (i === max && touched !== undefined) expect(c.get(touched)).toBe(touched);
      c.set(k, k, now() + 60_000, c.generation);
    });
    expect(c.size).toBe(present.length);
    for (const k of keys) expect(c.get(k)).toBe(present.includes(k) ? k : undefined);
  });
});

describe('tokenKey', () => {
  test.each([
    ['a.b.c', 'a.b.d', false],
    ['a.b.c', 'a.b.c', true],
  ])('%s vs %s: same key %s', (x, y, same) => {
    expect(tokenKey(x) === tokenKey(y)).toBe(same);
    expect(tokenKey(x)).not.toContain(x);
  });
});
