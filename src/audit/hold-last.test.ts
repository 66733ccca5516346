import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { HoldLastChunk } from './hold-last.ts';

/** A promise with its settle functions exposed. */
function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Collects what comes out of `hold` fed with `chunks`; resolves when the source has ended and its data passed. */
function run(chunks: string[], until: Promise<void>) {
  const hold = new HoldLastChunk(until, 'req-1');
  const out: string[] = [];
  let ended = false;
  let failed: Error | undefined;
  hold.on('data', (c: Buffer) => out.push(c.toString()));
  hold.on('end', () => {
    ended = true;
  });
  hold.on('error', (err: Error) => {
    failed = err;
  });
  Readable.from(chunks.map((c) => Buffer.from(c))).pipe(hold);
  const state = () => ({ out: [...out], ended, failed: failed?.message });
  return { state };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('HoldLastChunk', () => {
  test.each([
    { chunks: ['a', 'b', 'c'], before: ['a', 'b'], after: ['a', 'b', 'c'] },
    { chunks: ['only'], before: [], after: ['only'] },
    { chunks: [], before: [], after: [] },
  ])(
    'passes $chunks through but the last chunk and the end wait for the promise',
    async ({ chunks, before, after }) => {
      const d = deferred();
      const { state } = run(chunks, d.promise);
      await tick();
      expect(state()).toEqual({ out: before, ended: false, failed: undefined });
      d.resolve();
      await tick();
      expect(state()).toEqual({ out: after, ended: true, failed: undefined });
    },
  );

  test.each([
    { chunks: ['a', 'b', 'c'], delivered: ['a', 'b'] },
    { chunks: ['only'], delivered: [] },
  ])(
    'when the promise rejects, $chunks never complete: the stream fails without its last chunk',
    async ({ chunks, delivered }) => {
      const d = deferred();
      const { state } = run(chunks, d.promise);
      await tick();
      d.reject(new Error('audit store refused'));
      await tick();
      expect(state()).toEqual({
        out: delivered,
        ended: false,
        failed: 'audit record could not be stored; request id req-1',
      });
    },
  );

  test('a promise that already resolved lets everything through at once', async () => {
    const { state } = run(['x', 'y'], Promise.resolve());
    await tick();
    expect(state()).toEqual({ out: ['x', 'y'], ended: true, failed: undefined });
  });
});
