/**
 * Warming the series cache with series metadata (WADO-RS `…/series/{uid}/metadata`, DICOM PS3.18 §10.4.1.1.2) when a
 * caller's series-level QIDO-RS `studies/{uid}/series` (PS3.18 §10.6) succeeds: a viewer asks for the series of a
 * study and then for the metadata of each, and Orthanc's cold metadata answer (computed from every instance of the
 * series) is the slowest request on its path. The warm-up runs in the background and changes no answer:
 *
 * - It starts only after the QIDO was authorized for that study (its plan said the caller may see it); the series
 *   UIDs come from the QIDO answer itself, read on the side as it streams ({@link SeriesUidTap}), after it completed.
 * - It stores exactly what a metadata request with `Accept: application/dicom+json` (what DICOMweb clients such as
 *   OHIF's dicomweb-client send) would have stored, under the same key (study, series, Accept, public root), through
 *   {@link SeriesCache.fill}: the same generation check as every fill, so a warm-up that overlaps an invalidation of
 *   its study (STOW-RS, change feed, relink, another replica's NOTIFY, the listener going down) stores nothing.
 * - A metadata request still authorizes first, then joins a warm-up in flight for its key instead of asking Orthanc
 *   again ({@link SeriesCache.pending}); a warm-up does not start for a key cached or already being fetched.
 * - Bounded: the first `maxSeriesPerStudy` series of an answer, `concurrency` warm-up fetches at once per facade
 *   process (one app), at most {@link MAX_QUEUED} waiting (the oldest dropped: a viewer's latest study matters most).
 * - Failures are logged at debug and forgotten.
 */
import type { Transform } from 'node:stream';
import type { OrthancProxy } from '../../orthanc/proxy.ts';
import { type PublicUrlPlan, ReplaceStream } from '../http/public-url.ts';
import { isUid } from '../qido-query.ts';
import { cachedAnswerHeaders, DICOM_JSON } from '../relay.ts';
import { type CachedAnswer, type SeriesCache, seriesCacheKey } from '../cache/series-cache.ts';
import { scannableCoding, SeriesUidTap } from './series-uid-scan.ts';
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/** Warm-ups waiting for a free slot, at most. */
export const MAX_QUEUED = 64;
/** Decoded bytes of a QIDO answer scanned for series UIDs, at most (a series item is well under 2 KB). */
export const MAX_SCAN_BYTES = 1024 * 1024;

export interface PrefetchLog {
  debug(obj: object, msg: string): void;
}

export interface MetadataPrefetchOptions {
  enabled: boolean;
  maxSeriesPerStudy: number;
  concurrency: number;
  cache: SeriesCache;
  /** The public DICOMweb root (part of the cache key). */
  publicRoot: string;
  /** Orthanc's metadata answer as the cache keeps it; undefined when it is not cacheable (too large). */
  fetch: (study: string, series: string, signal: AbortSignal) => Promise<CachedAnswer | undefined>;
}

export interface MetadataPrefetchStats {
  /** Series handed to the warm-up (after the per-study bound). */
  requested: number;
  /** Fetches started. */
  started: number;
  /** Answers stored in the cache. */
  stored: number;
  /** Not fetched (cached, in flight or queued already, cache off) or fetched but not stored (invalidated, too large). */
  skipped: number;
  /** Dropped from a full queue. */
  dropped: number;
  failed: number;
}

interface Job {
  readonly key: string;
  readonly study: string;
  readonly series: string;
  readonly log: PrefetchLog;
}

export class MetadataPrefetch {
  readonly #opts: MetadataPrefetchOptions;
  readonly #queue: Job[] = [];
  readonly #queued = new Set<string>();
  #active = 0;
  #taps = 0;
  #closed = false;
  readonly #abort = new AbortController();
  #idle: Array<() => void> = [];
  readonly stats: MetadataPrefetchStats = { requested: 0, started: 0, stored: 0, skipped: 0, dropped: 0, failed: 0 };

  constructor(opts: MetadataPrefetchOptions) {
    this.#opts = opts;
  }

  get enabled(): boolean {
    return this.#opts.enabled && !this.#closed && this.#opts.cache.enabled;
  }

  /**
   * The watcher for a successful series QIDO of `study` that the caller was authorized for (relay `observe`), or
   * undefined when warm-ups are off. It warms the series it finds once the answer has been passed on completely.
   */
  observer(
    study: string,
    log: PrefetchLog,
  ): ((headers: Readonly<Record<string, string>>) => Transform | undefined) | undefined {
    if (!this.enabled) return undefined;
    return (headers) => {
      const coding = scannableCoding(headers['content-encoding']);
      if (coding === undefined || !this.enabled) {
        log.debug({ study, contentEncoding: headers['content-encoding'] }, 'metadata warm-up: answer not scanned');
        return undefined;
      }
      this.#taps++;
      return new SeriesUidTap({
        coding,
        max: this.#opts.maxSeriesPerStudy,
        maxScanBytes: MAX_SCAN_BYTES,
        onUids: (uids) => this.warm(study, uids, log),
        onSettled: () => {
          this.#taps--;
          this.#checkIdle();
        },
      });
    };
  }

  /**
   * Queues warm-ups of the metadata of `series` (the first `maxSeriesPerStudy`) of `study`, an authorized study.
   * Anything that is not a UID (they become an Orthanc path) is ignored.
   */
  warm(study: string, series: readonly string[], log: PrefetchLog): void {
    if (!this.enabled || !isUid(study)) return;
    for (const uid of series.filter(isUid).slice(0, this.#opts.maxSeriesPerStudy)) {
      this.stats.requested++;
      const key = seriesCacheKey({
        study,
        series: uid,
        kind: 'metadata',
        accept: DICOM_JSON,
        publicRoot: this.#opts.publicRoot,
      });
      if (this.#queued.has(key) || this.#opts.cache.has(key) || this.#opts.cache.pending(key, false)) {
        this.stats.skipped++;
        continue;
      }
      this.#queue.push({ key, study, series: uid, log });
      this.#queued.add(key);
      this.#pump();
      if (this.#queue.length > MAX_QUEUED) {
        const dropped = this.#queue.shift() as Job;
        this.#queued.delete(dropped.key);
        this.stats.dropped++;
      }
    }
    this.#checkIdle();
  }

  #pump(): void {
    while (this.#active < this.#opts.concurrency && this.#queue.length > 0 && !this.#closed) {
      const job = this.#queue.shift() as Job;
      this.#queued.delete(job.key);
      const signal = this.#abort.signal;
      // Not started when cached or being fetched meanwhile (a metadata request got there first), or the cache is off.
      const fill = this.#opts.cache.fill(job.key, job.study, () => this.#opts.fetch(job.study, job.series, signal));
      if (!fill) {
        this.stats.skipped++;
        continue;
      }
      this.stats.started++;
      this.#active++;
      fill
        .then(
          (stored) => {
            if (stored) this.stats.stored++;
            else this.stats.skipped++;
          },
          (err: unknown) => {
            this.stats.failed++;
            job.log.debug({ err, study: job.study, series: job.series }, 'metadata warm-up failed');
          },
        )
        .finally(() => {
          this.#active--;
          this.#pump();
        });
    }
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#active > 0 || this.#taps > 0 || this.#queue.length > 0) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /** Resolves when no QIDO answer is being scanned and no warm-up is waiting or running (tests, shutdown). */
  settled(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#idle.push(resolve);
      this.#checkIdle();
    });
  }

  /** Stops: nothing new starts, queued warm-ups are dropped, running ones are aborted; resolves when they settled. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    this.#queued.clear();
    this.#abort.abort();
    await this.settled();
  }
}

/** What {@link fetchSeriesMetadata} needs of the DICOMweb context. */
export interface MetadataSource {
  proxy: OrthancProxy;
  dicomWebRoot: string;
  urls: PublicUrlPlan;
  /** Larger answers are not kept (the cache's per-entry limit). */
  maxBytes: () => number;
  /** Bytes received, for the GC pacer (gc-pacer.ts). */
  note?: (bytes: number) => void;
}

/**
 * Orthanc's series metadata as the relay would have cached it for `Accept: application/dicom+json` (identity-encoded,
 * public URLs rewritten the same way, the same headers); undefined when larger than the cache's per-entry limit.
 * A non-200 answer throws {@link MetadataPrefetchError}.
 */
export async function fetchSeriesMetadata(
  src: MetadataSource,
  study: string,
  series: string,
  signal: AbortSignal,
): Promise<CachedAnswer | undefined> {
  const res = await src.proxy.get(`${src.dicomWebRoot}/studies/${study}/series/${series}/metadata`, {
    accept: DICOM_JSON,
    signal,
  });
  if (res.status !== 200) {
    res.body.destroy();
    throw new MetadataPrefetchError(`the image archive answered ${res.status}`);
  }
  const limit = src.maxBytes();
  if (Number(res.headers['content-length'] ?? 0) > limit) {
    res.body.destroy();
    return undefined;
  }
  const type = res.headers['content-type'] ?? '';
  const rewrite = src.urls.rewrite && /json|xml/.test(type) ? src.urls.rewrite : undefined;
  const body = rewrite ? res.body.pipe(new ReplaceStream(rewrite.from, rewrite.to)) : res.body;
  if (rewrite) res.body.once('error', (err) => body.destroy(err));
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    src.note?.(chunk.length);
    bytes += chunk.length;
    if (bytes > limit) {
      res.body.destroy();
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return { headers: cachedAnswerHeaders(res.headers, bytes), body: Buffer.concat(chunks, bytes) };
}

/** A warm-up fetch that Orthanc refused (logged at debug, never reaches a client). */
export class MetadataPrefetchError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOMWEB_METADATA_PREFETCH';
  override name = 'MetadataPrefetchError';
}
