import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { MAX_QUEUED, MetadataPrefetch } from './metadata-prefetch.ts';
import { DICOM_JSON } from '../relay.ts';
import { type CachedAnswer, SeriesCache, seriesCacheKey } from '../cache/series-cache.ts';

const ROOT = 'https://ehr/dicom-web';
const keyOf = (study: string, series: string) =>
  seriesCacheKey({ study, series, kind: 'metadata', accept: DICOM_JSON, publicRoot: ROOT });
const answer = (text: string): CachedAnswer => ({
  headers: { 'content-type': DICOM_JSON, 'content-length': String(text.length) },
  body: Buffer.from(text),
});
const uids = (n: number, prefix = '1.2.3') => Array.from({ length: n }, (_, i) => `${prefix}.${i + 1}`);

/** Orthanc as the warm-up sees it: every fetch waits until the test answers it. */
function archive(autoAnswer = false) {
  const calls: { study: string; series: string; signal: AbortSignal; answer: (a?: CachedAnswer | Error) => void }[] =
    [];
  const fetch = (study: string, series: string, signal: AbortSignal) =>
    new Promise<CachedAnswer | undefined>((resolve, reject) => {
      if (autoAnswer) queueMicrotask(() => resolve(answer(`meta ${series}`)));
      calls.push({
        study,
        series,
        signal,
        answer: (a) => (a instanceof Error ? reject(a) : resolve(a ?? answer(`meta ${series}`))),
      });
    });
  return { calls, fetch };
}

function setup(
  opts: { enabled?: boolean; maxSeries?: number; concurrency?: number; cacheBytes?: number; autoAnswer?: boolean } = {},
) {
  const cache = new SeriesCache({ maxBytes: opts.cacheBytes ?? 1 << 20, ttlMs: 60_000, maxEntryBytes: 1 << 16 });
  const orthanc = archive(opts.autoAnswer);
  const debug: object[] = [];
  const log = { debug: (obj: object) => debug.push(obj) };
  const prefetch = new MetadataPrefetch({
    enabled: opts.enabled ?? true,
    maxSeriesPerStudy: opts.maxSeries ?? 8,
    concurrency: opts.concurrency ?? 2,
    cache,
    publicRoot: ROOT,
    fetch: orthanc.fetch,
  });
  return { cache, orthanc, prefetch, log, debug };
}

/** Lets settled promise callbacks run. */
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('MetadataPrefetch bounds', () => {
  test.each([
    // [series in the answer, max per study, concurrency, fetched at once, fetched in all]
    [2, 8, 2, 2, 2],
    [12, 8, 2, 2, 8],
    [5, 3, 1, 1, 3],
    [1, 8, 4, 1, 1],
    [20, 20, 4, 4, 20],
  ])(
    '%i series, at most %i per study, %i at a time: %i in flight at once, %i fetched',
    async (n, maxSeries, concurrency, atOnce, total) => {
      const { orthanc, prefetch, cache, log } = setup({ maxSeries, concurrency });
      prefetch.warm('1.2', uids(n), log);
      expect(orthanc.calls.length).toBe(atOnce);
      let answered = 0;
      while (answered < orthanc.calls.length) {
        const inFlight = orthanc.calls.length - answered;
        expect(inFlight).toBeLessThanOrEqual(concurrency);
        orthanc.calls[answered++]?.answer();
        await tick();
      }
      await prefetch.settled();
      expect(orthanc.calls.map((c) => c.series)).toEqual(uids(n).slice(0, total));
      expect(prefetch.stats).toMatchObject({ requested: total, started: total, stored: total, failed: 0 });
      for (const s of uids(n).slice(0, total)) expect(cache.has(keyOf('1.2', s))).toBe(true);
    },
  );

  test(`at most ${MAX_QUEUED} warm-ups wait: the oldest waiting ones are dropped`, async () => {
    const { orthanc, prefetch, log } = setup({ maxSeries: 1000, concurrency: 1 });
    prefetch.warm('1.2', uids(MAX_QUEUED + 11), log);
    expect(prefetch.stats.dropped).toBe(10);
    for (let i = 0; i < orthanc.calls.length; i++) {
      orthanc.calls[i]?.answer();
      await tick();
    }
    await prefetch.settled();
    // The first was running; of the rest, the last MAX_QUEUED waited.
    expect(orthanc.calls.map((c) => c.series)).toEqual([uids(1)[0], ...uids(MAX_QUEUED + 11).slice(11)]);
  });
});

describe('MetadataPrefetch skips what needs no fetch', () => {
  test.each<[string, (s: ReturnType<typeof setup>) => void]>([
    ['cached', ({ cache }) => cache.put(keyOf('1.2', '1.2.3.1'), cache.ticket('1.2'), answer('x'))],
    ['being fetched by a metadata request', ({ cache }) => cache.relaying(keyOf('1.2', '1.2.3.1'))],
    ['being warmed already', ({ prefetch, log }) => prefetch.warm('1.2', ['1.2.3.1'], log)],
    ['waiting to be warmed', ({ prefetch, log }) => prefetch.warm('1.2', ['9.9.1', '9.9.2', '1.2.3.1'], log)],
  ])('a series %s is not fetched again', (_w, before) => {
    const s = setup();
    before(s);
    const fetched = s.orthanc.calls.filter((c) => c.series === '1.2.3.1').length;
    const skipped = s.prefetch.stats.skipped;
    s.prefetch.warm('1.2', ['1.2.3.1'], s.log);
    expect(s.orthanc.calls.filter((c) => c.series === '1.2.3.1').length).toBe(fetched);
    expect(s.prefetch.stats.skipped).toBe(skipped + 1);
  });

  test('a waiting warm-up whose series a metadata request started to fetch meanwhile is not started', async () => {
    const { orthanc, prefetch, cache, log } = setup({ concurrency: 1 });
    prefetch.warm('1.2', uids(2), log);
    const release = cache.relaying(keyOf('1.2', '1.2.3.2'));
    orthanc.calls[0]?.answer();
    await prefetch.settled();
    release();
    expect(orthanc.calls.map((c) => c.series)).toEqual(['1.2.3.1']);
    expect(prefetch.stats).toMatchObject({ started: 1, stored: 1, skipped: 1 });
  });

  test.each([
    ['a series UID with a path in it', '1.2', ['1.2.3/../../instances', '1.2.3.1'], ['1.2.3.1']],
    ['a series UID with a query', '1.2', ['1.2.3?x=1', '1.2.3.1'], ['1.2.3.1']],
    ['an empty series UID', '1.2', ['', '1.2.3.1'], ['1.2.3.1']],
    ['a study that is not a UID', '1.2/x', ['1.2.3.1'], []],
  ])('%s is not warmed (UIDs become an Orthanc path)', (_w, study, series, fetched) => {
    const { orthanc, prefetch, log } = setup({ concurrency: 4 });
    prefetch.warm(study, series, log);
    expect(orthanc.calls.map((c) => c.series)).toEqual(fetched);
  });

  test.each([
    ['turned off', { enabled: false }],
    ['without a series cache', { cacheBytes: 0 }],
  ])('%s: no observer and nothing fetched', (_w, opts) => {
    const { orthanc, prefetch, log } = setup(opts);
    expect(prefetch.observer('1.2', log)).toBeUndefined();
    prefetch.warm('1.2', uids(3), log);
    expect(orthanc.calls).toEqual([]);
  });
});

describe('MetadataPrefetch and the cache guard', () => {
  test.each<[string, boolean, (c: SeriesCache) => void]>([
    ['nothing happens', true, () => undefined],
    ['its study changes', false, (c) => c.invalidate('1.2')],
    ['another study changes', true, (c) => c.invalidate('7.7')],
    [
      'the change signal is lost and back',
      false,
      (c) => {
        c.suspend();
        c.resume();
      },
    ],
  ])('while the fetch is in flight %s: stored=%s', async (_w, stored, during) => {
    const { orthanc, prefetch, cache, log } = setup();
    prefetch.warm('1.2', ['1.2.3.1'], log);
    const joined = cache.pending(keyOf('1.2', '1.2.3.1'));
    during(cache);
    orthanc.calls[0]?.answer();
    await prefetch.settled();
    await joined;
    expect(cache.get(keyOf('1.2', '1.2.3.1')) !== undefined).toBe(stored);
    expect(prefetch.stats).toMatchObject({ started: 1, stored: stored ? 1 : 0, skipped: stored ? 0 : 1 });
  });

  test.each<[string, CachedAnswer | Error]>([
    ['Orthanc refuses', new Error('the image archive answered 404')],
    ['the answer is too large to keep', answer('x'.repeat(1 << 17))],
  ])('%s: logged at debug (failures), nothing stored, the next series goes on', async (_w, outcome) => {
    const { orthanc, prefetch, cache, log, debug } = setup({ concurrency: 1 });
    prefetch.warm('1.2', uids(2), log);
    orthanc.calls[0]?.answer(outcome);
    await tick();
    orthanc.calls[1]?.answer();
    await prefetch.settled();
    expect(cache.has(keyOf('1.2', '1.2.3.1'))).toBe(false);
    expect(cache.has(keyOf('1.2', '1.2.3.2'))).toBe(true);
    const failed = outcome instanceof Error;
    expect(prefetch.stats.failed).toBe(failed ? 1 : 0);
    expect(debug).toEqual(failed ? [expect.objectContaining({ study: '1.2', series: '1.2.3.1' })] : []);
  });

  test('close aborts the fetches in flight and drops the waiting ones', async () => {
    const { orthanc, prefetch, log } = setup({ concurrency: 1 });
    prefetch.warm('1.2', uids(3), log);
    const closing = prefetch.close();
    expect(orthanc.calls[0]?.signal.aborted).toBe(true);
    orthanc.calls[0]?.answer(new Error('aborted'));
    await closing;
    expect(orthanc.calls.length).toBe(1);
    prefetch.warm('1.2', uids(3), log);
    expect(orthanc.calls.length).toBe(1);
  });
});

describe('MetadataPrefetch observer (series UIDs from the QIDO answer)', () => {
  const qido = Buffer.from(
    JSON.stringify(uids(3, '2.25.7').map((u) => ({ '0020000E': { vr: 'UI', Value: [u] }, '00080060': { vr: 'CS' } }))),
  );
  test.each<[string, Record<string, string>, Buffer, string[]]>([
    ['identity', {}, qido, uids(3, '2.25.7')],
    ['gzip', { 'content-encoding': 'gzip' }, gzipSync(qido), uids(3, '2.25.7')],
    ['an unreadable coding', { 'content-encoding': 'compress' }, qido, []],
  ])('%s answer: passed on unchanged, its series warmed once it completed', async (_w, headers, body, warmed) => {
    const { orthanc, prefetch, cache, log } = setup({ concurrency: 4, autoAnswer: true });
    const watcher = prefetch.observer('1.2', log)?.(headers);
    expect(watcher === undefined).toBe(warmed.length === 0);
    const out: Buffer[] = [];
    const sink = async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) out.push(c);
    };
    const chunks = Readable.from([body.subarray(0, 10), body.subarray(10)]);
    await (watcher ? pipeline(chunks, watcher, sink) : pipeline(chunks, sink));
    expect(Buffer.compare(Buffer.concat(out), body)).toBe(0);
    await prefetch.settled();
    for (const s of warmed) expect(cache.has(keyOf('1.2', s))).toBe(true);
    expect(orthanc.calls.map((c) => c.series)).toEqual(warmed);
  });
});
