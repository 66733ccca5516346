/**
 * WADO-RS retrieval routes (DICOM PS3.18 §10.4): study, series and instance retrieval, metadata, frames, rendered,
 * thumbnail and bulk data. Path and query parameters are checked first (each route's allow-list, {@link wadoQueryRules};
 * 400 otherwise). Each request is then authorized on its study (the same 404 for unknown and forbidden studies), and
 * Orthanc's answer is streamed unchanged with the client's `Accept` (or its `accept` query parameter) forwarded
 * (transfer syntax and media type negotiation stay Orthanc's). Orthanc checks only that series and instance belong to A study with the path's UID;
 * for a restricted caller the facade checks that they belong to THE linked one (another PatientID's Orthanc study can
 * share the UID: access/resource-membership.ts), so a visible study UID cannot unlock another patient's series.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadDicomWebRequestError, DicomWebError } from '../errors.ts';
import { isUid, orthancQuery } from '../qido-query.ts';
import {
  ACCEPT,
  annotation,
  CHARSET,
  checkQuery,
  notPassedOn,
  oneOf,
  type ParamRule,
  type QueryRules,
  quality,
  toOrthanc,
  viewport,
  windowing,
} from './query-rules.ts';
import { authorizeStudy } from '../access/authorize-study.ts';
import { type DicomWebContext, relay } from '../relay.ts';
import { seriesCacheKey } from '../cache/series-cache.ts';
import { AS_STORED_HINT, fenceTranscoding, UNCOMPRESSED } from './transcode-fence.ts';

export interface WadoParams {
  study: string;
  series?: string;
  instance?: string;
  frames?: string;
  '*'?: string;
}

/** The thumbnail size when the client gives no `viewport` (PS3.18 §10.4.1.1.4 leaves it to the server). */
export const THUMBNAIL_VIEWPORT = '128,128';
/** Media types of rendered and thumbnail answers (Orthanc renders JPEG, its default, and PNG). */
export const RENDERED_TYPES = ['image/jpeg', 'image/png', '*/*'] as const;
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

/**
 * The query parameters each WADO-RS route accepts (PS3.18 §8.3.3, §8.3.5.1, §10.4), read by checkQuery; everything
 * else is a 400. Only rendered and thumbnail pass parameters to Orthanc; `accept` becomes Orthanc's Accept header.
 */
export function wadoQueryRules(maxViewport: number) {
  const view = toOrthanc(viewport(maxViewport));
  // Orthanc's rendering takes a single media type (anything else in its Accept header is an error there).
  const image: ParamRule = { to: 'accept', check: oneOf(RENDERED_TYPES) };
  return {
    retrieve: { accept: ACCEPT, charset: CHARSET },
    metadata: { accept: ACCEPT, charset: CHARSET },
    frames: { accept: ACCEPT },
    bulkdata: { accept: ACCEPT },
    rendered: {
      accept: image,
      charset: CHARSET,
      annotation: notPassedOn(annotation),
      quality: toOrthanc(quality),
      viewport: view,
      window: toOrthanc(windowing),
    },
    thumbnail: { accept: image, charset: CHARSET, viewport: view },
  } satisfies Record<string, QueryRules>;
}
export type WadoQueryRules = ReturnType<typeof wadoQueryRules>;
export type WadoRoute = keyof WadoQueryRules;

/** Checks a request URL's query against a route's rules; thumbnails get a default `viewport` (within `maxViewport`). */
export function wadoQuery(
  url: string,
  route: WadoRoute,
  rules: WadoQueryRules,
  maxViewport: number,
): { query: string; accept?: string } {
  const q = url.indexOf('?');
  const checked = checkQuery(rules[route], q >= 0 ? url.slice(q + 1) : '', route);
  const pairs = [...checked.orthanc];
  if (route === 'thumbnail' && !checked.values.has('viewport')) {
    const side = Math.min(Number(THUMBNAIL_VIEWPORT.split(',')[0]), maxViewport);
    pairs.push(['viewport', `${side},${side}`]);
  }
  const s = orthancQuery(pairs);
  return { query: s ? `?${s}` : '', ...(checked.accept === undefined ? {} : { accept: checked.accept }) };
}

type Req = FastifyRequest<{ Params: WadoParams }>;
type Handler = (req: Req, reply: FastifyReply) => Promise<FastifyReply>;

/**
 * A WADO-RS handler: path UIDs and query checked (400 before anything else), the study authorized, then Orthanc's
 * answer relayed; `suffix` gives the Orthanc path below the addressed resource.
 */
function handler(ctx: DicomWebContext, route: WadoRoute, suffix: (req: Req) => string = () => ''): Handler {
  const rules = wadoQueryRules(ctx.renderedMaxViewport);
  return async (req, reply) => {
    const path = resourcePath(req.params);
    const tail = suffix(req);
    const { query, accept } = wadoQuery(req.url, route, rules, ctx.renderedMaxViewport);
    await authorizeStudy(req, ctx, req.params.study, req.params);
    return relay(req, reply, ctx, `${path}${tail}${query}`, { accept });
  };
}

/**
 * Study, series, instance and frames retrieval: the query checked like every WADO-RS route, then through the
 * transcoding fence (transcode-fence.ts): Orthanc is never asked to convert compressed pixel data, which crashes its
 * GDCM plugin.
 */
function fencedHandler(ctx: DicomWebContext, route: 'retrieve' | 'frames'): Handler {
  const rules = wadoQueryRules(ctx.renderedMaxViewport);
  const frames = route === 'frames';
  return async (req, reply) => {
    const path = resourcePath(req.params);
    const { query, accept } = wadoQuery(req.url, route, rules, ctx.renderedMaxViewport);
    await authorizeStudy(req, ctx, req.params.study, req.params);
    const decision = fenceTranscoding(accept ?? req.headers.accept, frames);
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
    return relay(req, reply, ctx, `${path}${query}`, { accept: decision.accept });
  };
}

/** WADO-RS retrieve of a whole study (multipart/related), in the stored transfer syntaxes. */
export const retrieveStudy = (ctx: DicomWebContext) => fencedHandler(ctx, 'retrieve');
/** WADO-RS retrieve of a series, in the stored transfer syntaxes. */
export const retrieveSeries = (ctx: DicomWebContext) => fencedHandler(ctx, 'retrieve');
/** WADO-RS retrieve of an instance, in its stored transfer syntax. */
export const retrieveInstance = (ctx: DicomWebContext) => fencedHandler(ctx, 'retrieve');
/** WADO-RS metadata at study, series or instance level (`application/dicom+json`). */
export const retrieveMetadata = (ctx: DicomWebContext) => handler(ctx, 'metadata', () => '/metadata');
/**
 * WADO-RS series metadata, through the series cache: authorized first, per request; the answer is cached per study,
 * series, Accept header and public root, only for requests without a query string (the default answer).
 */
export const retrieveSeriesMetadata = (ctx: DicomWebContext): Handler => {
  const rules = wadoQueryRules(ctx.renderedMaxViewport);
  return async (req, reply) => {
    const path = resourcePath(req.params);
    const { accept } = wadoQuery(req.url, 'metadata', rules, ctx.renderedMaxViewport);
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
    return relay(req, reply, ctx, `${path}/metadata`, { cache, accept });
  };
};
/** WADO-RS frames (`/frames/{list}`): as stored with `transfer-syntax=*`; uncompressed only from uncompressed data. */
export const retrieveFrames = (ctx: DicomWebContext) => fencedHandler(ctx, 'frames');
/** WADO-RS rendered (study, series, instance, frame): image/jpeg by default, image/png on request. */
export const retrieveRendered = (ctx: DicomWebContext) => handler(ctx, 'rendered', () => '/rendered');
/** WADO-RS thumbnail: Orthanc 1.7 has none, so it is Orthanc's rendered image scaled into {@link THUMBNAIL_VIEWPORT}. */
export const retrieveThumbnail = (ctx: DicomWebContext) => handler(ctx, 'thumbnail', () => '/rendered');
/** WADO-RS bulk data, at the BulkDataURIs the metadata gives (`.../bulk/{tag path}`; `/bulkdata/` also accepted). */
export const retrieveBulkdata = (ctx: DicomWebContext) =>
  handler(ctx, 'bulkdata', (req) => {
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
