import { describe, expect, test } from 'vitest';
import { GcPacer, minorGcFunction } from './gc-pacer.ts';

describe('GcPacer', () => {
  test.each([
    { every: 100, chunks: [40, 40, 40, 40, 40], runs: 2 },
    { every: 100, chunks: [99], runs: 0 },
    { every: 100, chunks: [100, 100, 100], runs: 3 },
    { every: 100, chunks: [250], runs: 1 },
    { every: 0, chunks: [1000, 1000], runs: 0 },
  ])('every $every bytes, chunks $chunks: $runs collections', ({ every, chunks, runs }) => {
    let called = 0;
    const pacer = new GcPacer(every, () => {
      called++;
    });
    for (const c of chunks) pacer.note(c);
    expect(called).toBe(runs);
    expect(pacer.collections).toBe(runs);
  });

  test('without a collector it only counts', () => {
    const pacer = new GcPacer(10, undefined);
    pacer.note(100);
    expect(pacer.collections).toBe(0);
  });

  test('the collector is V8s and is not exposed as a global', () => {
    const gc = minorGcFunction();
    expect(typeof gc).toBe('function');
    gc?.();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
