/**
 * Shared route helpers of the `/dicom-web` scope: the caller's imaging access, the per-study authorization that gives
 * the same 404 for "unknown" and "not yours", and relaying one Orthanc answer to the client as a stream.
 */
import { pipeline, type Transform } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PatientFilter } from '../auth/access.ts';
import { imagingAccess } from '../auth/imaging-access.ts';
import { type OrthancProxy, readText, type UpstreamResponse } from '../orthanc/proxy.ts';
import { BadDicomWebRequestError, DicomWebError, StudyNotFoundError } from './errors.ts';
import { type PublicUrlPlan, ReplaceStream } from './public-url.ts';
import type { GcPacer } from './gc-pacer.ts';
import type { LinkedResources } from './linked-resources.ts';
import { CaptureStream, type SeriesCache } from './series-cache.ts';
import type { StoredSyntaxes } from './stored-syntax.ts';
import type { StudyIndex } from './study-index.ts';
import { type StudyRestriction, studyRestriction, withStudyLimit } from './study-restriction.ts';

export const DICOM_JSON = 'application/dicom+json';

export interface DicomWebContext {
  proxy: OrthancProxy;
  index: StudyIndex;
  /** Orthanc's DICOMweb root path, e.g. `/dicom-web`. */
  dicomWebRoot: string;
  maxUids: number;
  urls: PublicUrlPlan;
  /** Orthanc's answers for series metadata and the default instance QIDO of a series (see series-cache.ts). */
  seriesCache: SeriesCache;
  /** Keeps the memory of relayed chunks bounded (gc-pacer.ts). */
  gcPacer: GcPacer;
  /** Which Orthanc resources belong to a linked study (WADO for restricted callers, linked-resources.ts). */
  resources: LinkedResources;
  /** Largest rendered/thumbnail viewport side accepted (query-rules.ts); Orthanc allocates the whole image. */
  renderedMaxViewport: number;
  /** Stored transfer syntaxes per SOP Instance UID, for the transcoding fence of frames (transcode-fence.ts). */
  storedSyntaxes?: StoredSyntaxes | undefined;
}

/** Where a relayed answer may be cached: its key and its study (for invalidation). Authorize BEFORE passing it. */
export interface RelayCache {
  key: string;
  study: string;
}

export interface RelayOptions {
  accept?: string | undefined;
  root?: string;
  cache?: RelayCache | undefined;
  /**
   * Watches a successful answer as it streams to the client (it must pass every chunk on unchanged): called with
   * Orthanc's headers, returns the watcher or undefined. Used to learn series UIDs from a series QIDO (metadata-prefetch.ts).
   */
  observe?: ((headers: Readonly<Record<string, string>>) => Transform | undefined) | undefined;
}

/** Headers of Orthanc's successful answers that reach the client; everything else (Keep-Alive...) stays behind. */
const PASSED_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-disposition',
  'etag',
  'last-modified',
];

/** What a caller may see over DICOMweb: its readable patients and its granular ImagingStudy restrictions. */
export interface ImagingView {
  readonly filter: PatientFilter;
  readonly restriction: StudyRestriction;
}

/**
 * The caller's readable patients for imaging and its SMART v2 granular restrictions, from the shared policy
 * (`src/auth/imaging-access.ts`); 401 without an access context. `ImagingStudy?modality=` restrictions are applied to
 * the study index ({@link studyRestriction}); any other restriction parameter fails closed (nothing is visible). A
 * viewer token's study limit is ANDed in the same way ({@link withStudyLimit}).
 */
export function imagingView(req: FastifyRequest): ImagingView {
  const access = req.access;
  if (!access) throw new DicomWebError(401, 'Authentication required');
  const imaging = imagingAccess(access);
  const restriction = withStudyLimit(studyRestriction(imaging.restrictions()), imaging.studies());
  if (restriction.kind === 'deny') {
    req.log.info({ decision: 'deny', reason: restriction.reason, who: access.agent.who }, 'dicomweb access');
  }
  return { filter: imaging.readablePatients(), restriction };
}

/**
 * Throws the uniform 404 unless the caller may read the study (unknown, unlinked and other patients' alike) and, for a
 * caller restricted to linked studies, unless the addressed study, series or instance (`within`) belongs to the Orthanc
 * study the EHR links under the UID, not to another Orthanc study sharing it (linked-resources.ts).
 */
export async function authorizeStudy(
  req: FastifyRequest,
  ctx: DicomWebContext,
  studyUid: string,
  within: { series?: string | undefined; instance?: string | undefined } = {},
): Promise<void> {
  const { filter, restriction } = imagingView(req);
  const grant = await ctx.index.grant(filter, studyUid, restriction);
  const allowed =
    grant.kind === 'any' ||
    (grant.kind === 'linked' && (await ctx.resources.exists(grant.study, { study: studyUid, ...within })));
  req.log.info(
    {
      decision: allowed ? 'permit' : 'deny',
      study: studyUid,
      ...(grant.kind === 'linked' && !allowed ? { reason: 'not in the linked Orthanc study', ...within } : {}),
      who: req.access.agent.who,
      ...(restriction.kind === 'sql' ? { restriction: restriction.key } : {}),
    },
    'dicomweb access',
  );
  if (!allowed) throw new StudyNotFoundError();
}

/** An AbortSignal that fires when the client goes away before the answer is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * GETs `path` below Orthanc's DICOMweb root and streams the answer to the client unchanged (backpressure via
 * Fastify's stream piping; the upstream request is aborted when the client disconnects). Non-2xx answers become
 * DICOM-shaped errors: 404 the uniform one, 400/406/415 with the archive's reason, anything else 502.
 */
export async function relay(
  req: FastifyRequest,
  reply: FastifyReply,
  ctx: DicomWebContext,
  path: string,
  opts: RelayOptions = {},
): Promise<FastifyReply> {
  const cache = opts.cache && ctx.seriesCache.enabled ? opts.cache : undefined;
  if (cache) {
    // A warm-up fetching this answer right now (metadata-prefetch.ts): wait for it rather than ask Orthanc again.
    const inFlight = ctx.seriesCache.pending(cache.key);
    if (inFlight) await inFlight;
    const hit = ctx.seriesCache.get(cache.key);
    if (hit) {
      for (const [h, v] of Object.entries(hit.headers)) reply.header(h, v);
      return reply.code(200).send(hit.body);
    }
  }
  const ticket = cache ? ctx.seriesCache.ticket(cache.study) : undefined;
  const accept = opts.accept ?? req.headers.accept;
  // The client's Accept-Encoding goes to Orthanc (which may gzip) only when the answer is relayed byte for byte:
  // never for a cached answer (kept identity-encoded for every caller) nor one whose URLs are rewritten.
  const acceptEncoding = cache || ctx.urls.rewrite ? undefined : req.headers['accept-encoding'];
  // Announced until the answer is stored or given up, so that a warm-up does not fetch it a second time.
  const done = cache ? ctx.seriesCache.relaying(cache.key) : undefined;
  let upstream: UpstreamResponse;
  try {
    upstream = await ctx.proxy.get(`${opts.root ?? ctx.dicomWebRoot}${path}`, {
      ...(accept ? { accept } : {}),
      ...(typeof acceptEncoding === 'string' ? { acceptEncoding } : {}),
      signal: clientGone(reply),
    });
    if (upstream.status < 200 || upstream.status >= 300) throw await upstreamError(upstream.status, upstream.body);
  } catch (err) {
    done?.();
    throw err;
  }
  upstream.body.on('data', (chunk: Buffer) => ctx.gcPacer.note(chunk.length));
  const type = upstream.headers['content-type'] ?? '';
  const rewrite = ctx.urls.rewrite && /json|xml/.test(type) ? ctx.urls.rewrite : undefined;
  const headers: Record<string, string> = {};
  for (const h of PASSED_HEADERS) {
    const v = upstream.headers[h];
    if (v !== undefined && !(rewrite && h === 'content-length')) {
      headers[h] = String(v);
      reply.header(h, v);
    }
  }
  // The encoding now depends on the request's Accept-Encoding (RFC 9110 §12.5.5), whatever Orthanc chose.
  if (acceptEncoding !== undefined) reply.header('vary', 'Accept-Encoding');
  reply.code(upstream.status);
  let body: NodeJS.ReadableStream = rewrite
    ? upstream.body.pipe(new ReplaceStream(rewrite.from, rewrite.to))
    : upstream.body;
  // Only complete 200 answers within the per-entry limit are kept; larger ones stream through uncached.
  const declared = Number(upstream.headers['content-length'] ?? Number.NaN);
  const limit = cache ? ctx.seriesCache.maxEntryBytes : 0;
  const observer = opts.observe?.(upstream.headers);
  if (observer) body = pipeline(body, observer, () => {});
  if (cache && ticket && upstream.status === 200 && !(declared > limit)) {
    const capture = new CaptureStream(limit, (captured) => {
      ctx.seriesCache.put(cache.key, ticket, {
        headers: cachedAnswerHeaders(headers, captured.length),
        body: captured,
      });
    });
    // pipeline: an upstream failure mid-answer destroys the capture (nothing is stored) and the reply with it.
    body = pipeline(body, capture, () => done?.());
  } else upstream.body.once('close', () => done?.());
  return reply.send(body);
}

/** The headers kept with a cached answer: Orthanc's passed headers, with the length of the body as stored. */
export function cachedAnswerHeaders(
  upstream: Readonly<Record<string, string>>,
  bodyLength: number,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of PASSED_HEADERS) {
    const v = upstream[h];
    if (v !== undefined && h !== 'content-length') out[h] = String(v);
  }
  out['content-length'] = String(bodyLength);
  return out;
}

/** Turns a non-2xx Orthanc answer into the facade's error (the body is small; it is read and discarded). */
export async function upstreamError(
  status: number,
  body: NodeJS.ReadableStream & { destroy(): void },
): Promise<DicomWebError> {
  let reason = '';
  try {
    const text = await readText(body as never, 64 * 1024);
    const json = JSON.parse(text) as { Details?: string; Message?: string };
    reason = json.Details ?? json.Message ?? '';
  } catch {
    body.destroy();
  }
  if (status === 404) return new StudyNotFoundError();
  if (status === 400)
    return new BadDicomWebRequestError(`The image archive rejected the request${reason ? `: ${reason}` : ''}`);
  if (status === 406 || status === 415)
    return new DicomWebError(status, `Not acceptable${reason ? `: ${reason}` : ''}`);
  return new DicomWebError(502, 'The image archive failed to answer');
}
