import { describe, expect, test } from 'vitest';
import { InvalidatableCache, type InvalidatableCacheOptions } from './invalidatable-cache.ts';

function cache(opts: Partial<InvalidatableCacheOptions<string>> = {}) {
  let now = 1000;
  const c = new InvalidatableCache<string>({ ttlMs: 60_000, maxWeight: 100, now: () => now, ...opts });
  return { c, advance: (ms: number) => (now += ms) };
}

describe('InvalidatableCache', () => {
  test.each([
    // [ttl, read after, expected hit]
    [1000, 999, true],
    [1000, 1000, false],
    [0, 0, false],
    [-1, 0, false],
  ])('TTL %i ms, read after %i ms: hit=%s', (ttlMs, after, hit) => {
    const { c, advance } = cache({ ttlMs });
    c.put('k', c.ticket('st'), 'v');
    advance(after);
    expect(c.get('k') !== undefined).toBe(hit);
    expect(c.has('k')).toBe(hit);
  });

  test.each([
    // [age of the old entries when swept, dropped by the sweep]
    [59_999, 0],
    [60_000, 2],
  ])('a sweep after %i ms drops %i expired entries and frees their weight', (after, dropped) => {
    const { c, advance } = cache({ weigh: (_k, v) => v.length });
    c.put('a', c.ticket('st1'), 'aaa');
    c.put('b', c.ticket(undefined), 'bb');
    advance(after);
    c.put('fresh', c.ticket('st2'), 'f');
    expect(c.sweep()).toBe(dropped);
    expect(c.size).toBe(3 - dropped);
    expect(c.weight).toBe(dropped ? 1 : 6);
    expect(c.get('fresh')).toBe('f');
  });

  test.each([
    // [entry group, invalidated, entry dropped]
    ['st1', 'st1', true],
    ['st1', 'st2', false],
    ['st1', undefined, true],
    [undefined, 'st2', true],
    [undefined, undefined, true],
  ])('an entry of group %s, invalidation of %s: dropped=%s', (group, invalidated, dropped) => {
    const { c } = cache();
    expect(c.put('k', c.ticket(group), 'v')).toBe(true);
    c.invalidate(invalidated);
    expect(c.get('k') === undefined).toBe(dropped);
  });

  test.each([
    // [ticket group, invalidated while reading, stored]
    ['st1', 'st1', false],
    ['st1', 'st2', true],
    ['st1', undefined, false],
    [undefined, 'st2', false],
    [undefined, undefined, false],
  ])('a read under a ticket of %s, invalidation of %s meanwhile: stored=%s', (group, invalidated, stored) => {
    const { c } = cache();
    const ticket = c.ticket(group);
    c.invalidate(invalidated);
    expect(c.isStale(ticket)).toBe(!stored);
    expect(c.put('k', ticket, 'v')).toBe(stored);
    expect(c.get('k') !== undefined).toBe(stored);
  });

  test('a ticket can be stored in another group than its own', () => {
    const { c } = cache();
    c.put('k', c.ticket(), 'v', 'st1');
    c.invalidate('st2');
    expect(c.get('k')).toBe('v');
    c.invalidate('st1');
    expect(c.get('k')).toBeUndefined();
  });

  test('suspended: nothing served or stored, and nothing read before resume is stored', () => {
    const { c } = cache();
    c.put('k', c.ticket('st'), 'v');
    const before = c.ticket('st');
    c.suspend();
    expect(c.suspended).toBe(true);
    expect(c.get('k')).toBeUndefined();
    expect(c.put('k2', c.ticket('st'), 'v')).toBe(false);
    const during = c.ticket('st');
    c.resume();
    expect(c.size).toBe(0);
    expect(c.put('k3', before, 'v')).toBe(false);
    expect(c.put('k4', during, 'v')).toBe(false);
    expect(c.put('k5', c.ticket('st'), 'v')).toBe(true);
  });

  test.each([
    // [whenFull, weights put in order (keys a, b, c...), keys left]
    ['lru', [40, 40, 40], ['b', 'c']],
    ['clear', [40, 40, 40], ['c']],
    ['lru', [101], []],
    ['clear', [50, 50], ['a', 'b']],
  ] as const)('full (%s), weights %j: keys left %j', (whenFull, weights, left) => {
    const { c } = cache({ whenFull, weigh: (_k, v) => v.length });
    weights.forEach((w, i) => {
      c.put(String.fromCharCode(97 + i), c.ticket(), 'x'.repeat(w));
    });
    expect(weights.map((_w, i) => String.fromCharCode(97 + i)).filter((k) => c.has(k))).toEqual(left);
    expect(c.weight).toBe(left.length ? weights.slice(weights.length - left.length).reduce((a, b) => a + b, 0) : 0);
  });

  test('lru: a read makes an entry most recently used', () => {
    const { c } = cache({ maxWeight: 2 });
    c.put('a', c.ticket(), '1');
    c.put('b', c.ticket(), '2');
    c.get('a');
    c.put('c', c.ticket(), '3');
    expect([c.has('a'), c.has('b'), c.has('c')]).toEqual([true, false, true]);
  });

  test('single flight: concurrent requests join the read until its ticket goes stale', async () => {
    const { c } = cache();
    let release!: (v: string) => void;
    let reads = 0;
    const read = () => {
      reads++;
      return new Promise<string>((r) => (release = r));
    };
    const ticket = c.ticket('st');
    const first = c.fly('k', ticket, read);
    expect(c.flight<string>('k')?.result).toBe(first);
    c.invalidate('other');
    expect(c.flight('k')).toBeDefined();
    c.invalidate('st');
    expect(c.flight('k')).toBeUndefined();
    release('v');
    await expect(first).resolves.toBe('v');
    expect(reads).toBe(1);
    expect(c.flight('k')).toBeUndefined();
  });

  test('a failed read rejects for its joiners and leaves no flight behind', async () => {
    const { c } = cache();
    const failing = c.fly('k', c.ticket(), () => Promise.reject(new Error('down')));
    const joined = c.flight<string>('k');
    await expect(failing).rejects.toThrow('down');
    await expect(joined?.result).rejects.toThrow('down');
    await expect(joined?.settled).resolves.toBeUndefined();
    expect(c.flight('k')).toBeUndefined();
  });
});
