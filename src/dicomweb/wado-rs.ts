/**
 * WADO-RS retrieval routes (DICOM PS3.18 §10.4): study, series and instance retrieval, metadata, frames, rendered,
 * thumbnail and bulk data. Each request is authorized on its study (the same 404 for unknown and forbidden studies),
 * then Orthanc's answer is streamed unchanged with the client's `Accept` forwarded (transfer syntax and media type
 * negotiation stay Orthanc's). Orthanc checks only that series and instance belong to A study with the path's UID;
 * for a restricted caller the facade checks that they belong to THE linked one (another PatientID's Orthanc study can
 * share the UID: linked-resources.ts), so a visible study UID cannot unlock another patient's series.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadDicomWebRequestError, DicomWebError } from './errors.ts';
import { isUid, orthancQuery } from './qido-query.ts';
import { authorizeStudy, type DicomWebContext, relay } from './relay.ts';
import { seriesCacheKey } from './series-cache.ts';
import { AS_STORED_HINT, fenceTranscoding, UNCOMPRESSED } from './transcode-fence.ts';

export interface WadoParams {
  study: string;
  series?: string;
  instance?: string;
  frames?: string;
  '*'?: string;
}

/** Query parameters of rendered resources (PS3.18 §8.3.5) that Orthanc understands and the facade passes on. */
const RENDERED_PARAMS = new Set(['viewport', 'quality', 'window']);
/** The thumbnail size when the client gives no `viewport` (PS3.18 §10.4.1.1.4 leaves it to the server). */
export const THUMBNAIL_VIEWPORT = '128,128';
const FRAMES = /^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,999}$/;
const BULK = /^[0-9A-Fa-f]{8}(\/[0-9]{1,6}\/[0-9A-Fa-f]{8})*$/;

/** Validates the path parameters and returns the Orthanc path of the addressed resource (study/series/instance). */
export function resourcePath(p: WadoParams): string {
  for (const name of ['study', 'series', 'instance'] as const) {
    const uid = p[name];
    if (uid !== undefined && !isUid(uid))
      throw new BadDicomWebRequestError(`${name}: "${uid.slice(0, 80)}" is not a valid UID`);
  }
  let path = `/studies/${p.study}`;
  if (p.series !== undefined) path += `/series/${p.series}`;
  if (p.instance !== undefined) path += `/instances/${p.instance}`;
  if (p.frames !== undefined) {
    if (!FRAMES.test(p.frames))
      throw new BadDicomWebRequestError('frames: expected a comma-separated list of frame numbers >= 1');
    path += `/frames/${p.frames}`;
  }
  return path;
}

/** The query string for rendered/thumbnail: known rendering parameters only; `viewport` defaulted for thumbnails. */
export function renderedQuery(url: string, thumbnail: boolean): string {
  const q = url.indexOf('?');
  const given = new URLSearchParams(q >= 0 ? url.slice(q + 1) : '');
  const out = new Map<string, string>();
  for (const [k, v] of given) {
    if (!RENDERED_PARAMS.has(k)) {
      throw new BadDicomWebRequestError(`Unsupported rendering parameter "${k.slice(0, 80)}"`);
    }
    if (!/^[0-9A-Za-z.,-]{1,64}$/.test(v)) throw new BadDicomWebRequestError(`${k}: "${v.slice(0, 80)}" is not valid`);
    if (out.has(k)) throw new BadDicomWebRequestError(`${k} is given more than once`);
    out.set(k, v);
  }
  if (thumbnail && !out.has('viewport')) out.set('viewport', THUMBNAIL_VIEWPORT);
  const s = orthancQuery(out);
  return s ? `?${s}` : '';
}

type Req = FastifyRequest<{ Params: WadoParams }>;
type Handler = (req: Req, reply: FastifyReply) => Promise<FastifyReply>;

function handler(ctx: DicomWebContext, suffix: (req: Req) => string): Handler {
  return async (req, reply) => {
    const path = resourcePath(req.params);
    const tail = suffix(req);
    await authorizeStudy(req, ctx, req.params.study, req.params);
    return relay(req, reply, ctx, `${path}${tail}`);
  };
}

/**
 * Study, series, instance and frames retrieval through the transcoding fence (transcode-fence.ts): Orthanc is never
 * asked to convert compressed pixel data, which crashes its GDCM plugin.
 */
function fencedHandler(ctx: DicomWebContext, frames: boolean): Handler {
  return async (req, reply) => {
    const path = resourcePath(req.params);
    await authorizeStudy(req, ctx, req.params.study, req.params);
    const decision = fenceTranscoding(req.headers.accept, frames);
    if (decision.action === 'refuse') throw new DicomWebError(406, decision.reason);
    if (decision.action === 'check-stored' && ctx.storedSyntaxes && req.params.instance) {
      const stored = await ctx.storedSyntaxes.of(req.params.instance);
      const compressed = stored.find((ts) => !UNCOMPRESSED.has(ts));
      if (compressed) {
        req.log.info(
          { stored: compressed, accept: req.headers.accept },
          'frames refused: would make Orthanc transcode',
        );
        throw new DicomWebError(406, `The frames are stored compressed (${compressed}); ${AS_STORED_HINT}`);
      }
    }
    if (decision.action === 'forward' && decision.warning) reply.header('warning', `299 - "${decision.warning}"`);
    return relay(req, reply, ctx, path, { accept: decision.accept });
  };
}

/** WADO-RS retrieve of a whole study (multipart/related), in the stored transfer syntaxes. */
export const retrieveStudy = (ctx: DicomWebContext) => fencedHandler(ctx, false);
/** WADO-RS retrieve of a series, in the stored transfer syntaxes. */
export const retrieveSeries = (ctx: DicomWebContext) => fencedHandler(ctx, false);
/** WADO-RS retrieve of an instance, in its stored transfer syntax. */
export const retrieveInstance = (ctx: DicomWebContext) => fencedHandler(ctx, false);
/** WADO-RS metadata at study, series or instance level (`application/dicom+json`). */
export const retrieveMetadata = (ctx: DicomWebContext) => handler(ctx, () => '/metadata');
/**
 * WADO-RS series metadata, through the series cache: authorized first, per request; the answer is cached per study,
 * series, Accept header and public root, only for requests without a query string (the default answer).
 */
export const retrieveSeriesMetadata =
  (ctx: DicomWebContext): Handler =>
  async (req, reply) => {
    const path = resourcePath(req.params);
    await authorizeStudy(req, ctx, req.params.study, req.params);
    const { study, series } = req.params;
    const cacheable = series !== undefined && !req.url.includes('?');
    const cache = cacheable
      ? {
          study,
          key: seriesCacheKey({
            study,
            series,
            kind: 'metadata',
            accept: req.headers.accept ?? '',
            publicRoot: ctx.urls.publicRoot,
          }),
        }
      : undefined;
    return relay(req, reply, ctx, `${path}/metadata`, { cache });
  };
/** WADO-RS frames (`/frames/{list}`): as stored with `transfer-syntax=*`; uncompressed only from uncompressed data. */
export const retrieveFrames = (ctx: DicomWebContext) => fencedHandler(ctx, true);
/** WADO-RS rendered (study, series, instance, frame): image/jpeg by default, image/png on request. */
export const retrieveRendered = (ctx: DicomWebContext) =>
  handler(ctx, (req) => `/rendered${renderedQuery(req.url, false)}`);
/** WADO-RS thumbnail: Orthanc 1.7 has none, so it is Orthanc's rendered image scaled into {@link THUMBNAIL_VIEWPORT}. */
export const retrieveThumbnail = (ctx: DicomWebContext) =>
  handler(ctx, (req) => `/rendered${renderedQuery(req.url, true)}`);
/** WADO-RS bulk data, at the BulkDataURIs the metadata gives (`.../bulk/{tag path}`; `/bulkdata/` also accepted). */
export const retrieveBulkdata = (ctx: DicomWebContext) =>
  handler(ctx, (req) => {
    const tagPath = req.params['*'] ?? '';
    if (!BULK.test(tagPath))
      throw new BadDicomWebRequestError('bulk data: expected an attribute tag path such as 7fe00010');
    return `/bulk/${tagPath.toLowerCase()}`;
  });

export async function wadoRoutes(app: FastifyInstance, opts: { context: DicomWebContext }) {
  const ctx = opts.context;
  const levels = [
    '/studies/:study',
    '/studies/:study/series/:series',
    '/studies/:study/series/:series/instances/:instance',
  ];
  const [study, series, instance] = levels as [string, string, string];
  const frames = `${instance}/frames/:frames`;
  app.get(study, retrieveStudy(ctx));
  app.get(series, retrieveSeries(ctx));
  app.get(instance, retrieveInstance(ctx));
  app.get(`${series}/metadata`, retrieveSeriesMetadata(ctx));
  for (const level of levels) {
    if (level !== series) app.get(`${level}/metadata`, retrieveMetadata(ctx));
    app.get(`${level}/rendered`, retrieveRendered(ctx));
    app.get(`${level}/thumbnail`, retrieveThumbnail(ctx));
  }
  app.get(frames, retrieveFrames(ctx));
  app.get(`${frames}/rendered`, retrieveRendered(ctx));
  app.get(`${frames}/thumbnail`, retrieveThumbnail(ctx));
  app.get(`${instance}/bulk/*`, retrieveBulkdata(ctx));
  app.get(`${instance}/bulkdata/*`, retrieveBulkdata(ctx));
}
