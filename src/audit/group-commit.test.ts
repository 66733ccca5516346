import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { GroupCommit, GroupCommitClosedError, GroupCommitResultError } from './group-commit.ts';

/** A flush that records its batches and answers each item with `r:<item>` once `release` is called for that batch. */
function recorder(fail?: (batch: readonly number[]) => Error | undefined) {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const flush = async (items: readonly number[]): Promise<string[]> => {
    batches.push([...items]);
    await new Promise<void>((resolve) => releases.push(resolve));
    const err = fail?.(items);
    if (err) throw err;
    return items.map((i) => `r:${i}`);
  };
  const releaseAll = async () => {
    while (releases.length) {
      releases.shift()?.();
      await vi.advanceTimersByTimeAsync(0);
    }
  };
  return { batches, flush, releaseAll };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('batching', () => {
  test.each([
    // name, maxBatch, maxWaitMs, items submitted at once, ms advanced before releasing, expected batches
    {
      name: 'flush on size: a full queue starts at once',
      maxBatch: 3,
      maxWaitMs: 1000,
      n: 3,
      advance: 0,
      expected: [[0, 1, 2]],
    },
    {
      name: 'flush on size: the rest waits for the next batch',
      maxBatch: 2,
      maxWaitMs: 1000,
      n: 5,
      advance: 1000,
      expected: [[0, 1], [2, 3], [4]],
    },
    {
      name: 'flush on timer: fewer than maxBatch',
      maxBatch: 100,
      maxWaitMs: 2,
      n: 4,
      advance: 2,
      expected: [[0, 1, 2, 3]],
    },
    {
      name: 'flush on the next turn with maxWaitMs 0',
      maxBatch: 100,
      maxWaitMs: 0,
      n: 3,
      advance: 0,
      expected: [[0, 1, 2]],
    },
    {
      name: 'a single item is flushed alone after the wait',
      maxBatch: 10,
      maxWaitMs: 5,
      n: 1,
      advance: 5,
      expected: [[0]],
    },
  ])('$name', async ({ maxBatch, maxWaitMs, n, advance, expected }) => {
    const r = recorder();
    const gc = new GroupCommit(r.flush, { maxBatch, maxWaitMs });
    const results = Array.from({ length: n }, (_, i) => gc.submit(i));
    await vi.advanceTimersByTimeAsync(advance);
    await r.releaseAll();
    await vi.advanceTimersByTimeAsync(advance);
    await r.releaseAll();
    expect(r.batches).toEqual(expected);
    expect(await Promise.all(results)).toEqual(Array.from({ length: n }, (_, i) => `r:${i}`));
  });

  test('nothing is flushed before the wait is over or the batch is full', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.flush, { maxBatch: 3, maxWaitMs: 10 });
    void gc.submit(1);
    void gc.submit(2);
    await vi.advanceTimersByTimeAsync(9);
    expect(r.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.batches).toEqual([[1, 2]]);
    await r.releaseAll();
  });

  test('one flush at a time: items queued during a flush form the next batch, in order', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.flush, { maxBatch: 10, maxWaitMs: 1 });
    const first = [gc.submit(1), gc.submit(2)];
    await vi.advanceTimersByTimeAsync(1);
    expect(r.batches).toEqual([[1, 2]]);
    const second = [gc.submit(3), gc.submit(4), gc.submit(5)];
    await vi.advanceTimersByTimeAsync(50);
    expect(r.batches).toEqual([[1, 2]]); // still flushing the first batch
    await r.releaseAll();
    expect(r.batches).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    expect(await Promise.all([...first, ...second])).toEqual(['r:1', 'r:2', 'r:3', 'r:4', 'r:5']);
  });
});

describe('several flushes in flight (maxInFlight)', () => {
  test.each([
    // while the first batch is flushing, two more arrive one event-loop turn apart
    { maxInFlight: 1, startedBeforeRelease: [[1, 2]] },
    {
      maxInFlight: 2,
      startedBeforeRelease: [
        [1, 2],
        [3, 4],
      ],
    },
    { maxInFlight: 3, startedBeforeRelease: [[1, 2], [3, 4], [5]] },
  ])(
    'maxInFlight $maxInFlight: $startedBeforeRelease.length flushes start before any ends',
    async ({ maxInFlight, startedBeforeRelease }) => {
      const r = recorder();
      const gc = new GroupCommit(r.flush, { maxBatch: 10, maxWaitMs: 0, maxInFlight });
      const all = [gc.submit(1), gc.submit(2)];
      await vi.advanceTimersByTimeAsync(0);
      all.push(gc.submit(3), gc.submit(4));
      await vi.advanceTimersByTimeAsync(0);
      all.push(gc.submit(5));
      await vi.advanceTimersByTimeAsync(0);
      expect(r.batches).toEqual(startedBeforeRelease);
      await r.releaseAll();
      await r.releaseAll();
      // Every item in exactly one batch, batches started in submission order, each waiter answered with its own result.
      expect(r.batches.flat()).toEqual([1, 2, 3, 4, 5]);
      expect(await Promise.all(all)).toEqual(['r:1', 'r:2', 'r:3', 'r:4', 'r:5']);
    },
  );

  test('a batch that ends first settles first; close waits for all of them', async () => {
    const releases: (() => void)[] = [];
    const gc = new GroupCommit(
      async (items: readonly number[]) => {
        await new Promise<void>((resolve) => releases.push(resolve));
        return items.map((i) => i * 10);
      },
      { maxBatch: 1, maxWaitMs: 0, maxInFlight: 2 },
    );
    const order: number[] = [];
    const a = gc.submit(1).then((v) => order.push(v));
    const b = gc.submit(2).then((v) => order.push(v));
    await vi.advanceTimersByTimeAsync(0);
    expect(releases).toHaveLength(2);
    releases[1]?.();
    await b;
    expect(order).toEqual([20]);
    const closed = gc.close();
    releases[0]?.();
    await closed;
    await a;
    expect(order).toEqual([20, 10]);
  });
});

describe('errors', () => {
  test.each([
    { name: 'a failing flush rejects every waiter of its batch', fail: [true], batches: 1 },
    { name: 'only the failing batch is rejected; the next one succeeds', fail: [true, false], batches: 2 },
    { name: 'a later failing batch does not touch the earlier one', fail: [false, true], batches: 2 },
  ])('$name', async ({ fail, batches }) => {
    let call = 0;
    const r = recorder(() => (fail[call++] ? new Error(`batch ${call} failed`) : undefined));
    const gc = new GroupCommit(r.flush, { maxBatch: 3, maxWaitMs: 1 });
    const settled = Array.from({ length: 3 * batches }, (_, i) =>
      gc.submit(i).then(
        (v) => ({ ok: true, v }),
        (e: Error) => ({ ok: false, v: e.message }),
      ),
    );
    await r.releaseAll();
    await vi.advanceTimersByTimeAsync(1);
    await r.releaseAll();
    const out = await Promise.all(settled);
    for (let b = 0; b < batches; b++) {
      const slice = out.slice(3 * b, 3 * b + 3);
      if (fail[b]) expect(slice).toEqual(Array(3).fill({ ok: false, v: `batch ${b + 1} failed` }));
      else expect(slice).toEqual([0, 1, 2].map((i) => ({ ok: true, v: `r:${3 * b + i}` })));
    }
  });

  test('a flush that answers the wrong number of results rejects the batch', async () => {
    const gc = new GroupCommit(async (items: readonly number[]) => items.slice(1), { maxBatch: 2, maxWaitMs: 0 });
    const a = gc.submit(1);
    const b = gc.submit(2);
    await expect(a).rejects.toBeInstanceOf(GroupCommitResultError);
    await expect(b).rejects.toBeInstanceOf(GroupCommitResultError);
  });

  test.each([
    { maxBatch: 0, maxWaitMs: 1 },
    { maxBatch: 1, maxWaitMs: -1 },
    { maxBatch: 1, maxWaitMs: 0, maxInFlight: 0 },
  ])('refuses options %o', (opts) => {
    expect(() => new GroupCommit(async () => [], opts)).toThrow(RangeError);
  });
});

describe('close', () => {
  test('flushes what is queued without waiting for the timer, then refuses new items', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.flush, { maxBatch: 2, maxWaitMs: 60_000 });
    const queued = [gc.submit(1), gc.submit(2), gc.submit(3)];
    const closed = gc.close();
    await r.releaseAll();
    await r.releaseAll();
    await closed;
    expect(r.batches).toEqual([[1, 2], [3]]);
    expect(await Promise.all(queued)).toEqual(['r:1', 'r:2', 'r:3']);
    await expect(gc.submit(4)).rejects.toBeInstanceOf(GroupCommitClosedError);
  });
});
