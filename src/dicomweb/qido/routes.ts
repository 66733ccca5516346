/**
 * QIDO-RS search routes (DICOM PS3.18 §10.6): every search path, constrained to the studies the caller may see
 * (see qido/paging.ts for the strategy), answered as `application/dicom+json`. For a restricted caller only the Orthanc
 * study the EHR links under each allowed UID answers (access/linked-orthanc-studies.ts, qido/linked-search.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { imagingAccess } from '../../auth/imaging-access.ts';
import { BadDicomWebRequestError, DicomWebError, StudyNotFoundError } from '../errors.ts';
import { replaceAll } from '../http/public-url.ts';
import { planIndexQuery } from './study-answers-query.ts';
import { pageOfMerged, planQido, qidoSortKey, SORT_TAGS } from './paging.ts';
import { isUid, orthancQueryString, parseQidoQuery, type QidoLevel, type QidoQuery } from '../qido-query.ts';
import { type LinkedStudies, linkedQuery } from '../access/linked-orthanc-studies.ts';
import { answerLinked, type DicomJson, fetchQidoJson, keepLinkedLogged } from './linked-search.ts';
import { imagingView } from '../access/authorize-study.ts';
import { DICOM_JSON, type DicomWebContext, relay } from '../relay.ts';
import { seriesCacheKey } from '../cache/series-cache.ts';
import type { StudyAnswersStore } from './study-answers-store.ts';
import type { MetadataPrefetch } from './metadata-prefetch.ts';

interface PathParams {
  study?: string;
  series?: string;
}

const LEVEL_PATH: Record<QidoLevel, string> = { study: 'studies', series: 'series', instance: 'instances' };
const SORT_TAGS_AT: Record<QidoLevel, readonly string[]> = {
  study: SORT_TAGS.slice(0, 1),
  series: SORT_TAGS.slice(0, 2),
  instance: SORT_TAGS,
};
/** Chunk queries in flight at once for one search (chunked mode only). */
const CHUNK_CONCURRENCY = 4;

/** Does an Accept header allow a DICOM JSON answer? (No Accept, `*\/*`, `application/*`, `application/json`.) */
export function acceptsDicomJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept
    .split(',')
    .map((part) => (part.split(';')[0] ?? '').trim().toLowerCase())
    .some((t) => t === DICOM_JSON || t === 'application/json' || t === '*/*' || t === 'application/*');
}

/** The Orthanc path (below the DICOMweb root) of a search at `level` under the given path UIDs. */
export function searchPath(level: QidoLevel, p: PathParams): string {
  if (p.study === undefined) return `/${LEVEL_PATH[level]}`;
  const series = p.series === undefined ? '' : `/series/${p.series}`;
  return `/studies/${p.study}${series}/${LEVEL_PATH[level]}`;
}

function checkPathUids(p: PathParams): void {
  for (const [name, uid] of Object.entries(p)) {
    if (uid !== undefined && !isUid(uid))
      throw new BadDicomWebRequestError(`${name}: "${uid.slice(0, 80)}" is not a valid UID`);
  }
}

/** The QIDO routes' context: the DICOMweb one plus the study-level answers kept by the EHR. */
export interface QidoContext extends DicomWebContext {
  studyAnswers?: StudyAnswersStore | undefined;
  metadataPrefetch?: MetadataPrefetch | undefined;
}

async function search(
  level: QidoLevel,
  req: FastifyRequest<{ Params: PathParams }>,
  reply: FastifyReply,
  ctx: QidoContext,
) {
  const params = req.params;
  checkPathUids(params);
  const q = req.url.indexOf('?');
  const query = parseQidoQuery(q >= 0 ? req.url.slice(q + 1) : '', level);
  if (!acceptsDicomJson(req.headers.accept)) {
    throw new DicomWebError(406, 'QIDO-RS answers are available as application/dicom+json only');
  }
  const { filter, restriction } = imagingView(req);
  // A study-limited caller (a viewer token) naming another study, in the path or a StudyInstanceUID match: the uniform
  // 404 a retrieve of that study gets, not an empty answer.
  if (imagingAccess(req.access).excludesAny([params.study, ...(query.studyUids ?? [])])) {
    req.log.info({ decision: 'deny', reason: 'outside the study limit', who: req.access.agent.who }, 'qido scope');
    throw new StudyNotFoundError();
  }
  const answers = ctx.studyAnswers;
  if (level === 'study' && params.study === undefined && answers?.covers(filter, restriction)) {
    const plan = planIndexQuery(query);
    const who = req.access.agent.who;
    const restricted = restriction.kind === 'sql' ? { restriction: restriction.key } : {};
    if (plan.kind === 'index') {
      try {
        const { items, filled } = await answers.search(filter, restriction, plan);
        req.log.info({ decision: 'restricted', plan: 'index', filled, who, ...restricted }, 'qido scope');
        return reply.code(200).header('content-type', DICOM_JSON).send(JSON.stringify(items));
      } catch (err) {
        req.log.warn({ err, who }, 'qido: the study index failed; asking the image archive');
      }
    } else req.log.debug({ reason: plan.reason }, 'qido: not answered from the study index');
  }
  const scope = await ctx.index.scope(filter, restriction);
  const plan = planQido(scope, query.studyUids, params.study, ctx.maxUids);
  req.log.info(
    {
      decision: scope.all ? 'all' : 'restricted',
      plan: plan.kind,
      who: req.access.agent.who,
      ...(restriction.kind === 'sql' ? { restriction: restriction.key } : {}),
    },
    'qido scope',
  );
  const path = searchPath(level, params);
  if (plan.kind === 'empty') return reply.code(200).header('content-type', DICOM_JSON).send('[]');
  if (!scope.all && plan.kind === 'single') {
    const { study, series } = params;
    const seriesDefault = level === 'instance' && study && series && q < 0 ? { study, series } : undefined;
    const warm = level === 'series' && study !== undefined ? ctx.metadataPrefetch : undefined;
    const search = { path, query, studyUids: plan.studyUids ?? [], linked: scope.studies, seriesDefault };
    const onSeries = warm && study ? (uids: string[]) => warm.warm(study, uids, req.log) : undefined;
    return answerLinked(req, reply, ctx, { ...search, onSeries });
  }
  if (plan.kind === 'single' && level === 'instance' && params.study && params.series && q < 0) {
    // The default instance QIDO of a series for an all-patients caller (restricted ones are answered above): the same
    // answer for every such caller, so it goes through the series cache, asked without the path's study constraint.
    const { study, series } = params;
    const key = seriesCacheKey({ study, series, kind: 'instances', accept: '', publicRoot: ctx.urls.publicRoot });
    return relay(req, reply, ctx, path, { accept: DICOM_JSON, cache: { key, study } });
  }
  if (plan.kind === 'single') {
    const qs = orthancQueryString(query, plan.studyUids ? { studyUids: plan.studyUids } : {});
    // The series of a study the plan lets the caller see: warm their metadata from the answer (metadata-prefetch.ts).
    const observe =
      level === 'series' && params.study !== undefined
        ? ctx.metadataPrefetch?.observer(params.study, req.log)
        : undefined;
    return relay(req, reply, ctx, `${path}?${qs}`, { accept: DICOM_JSON, observe });
  }
  const linked = scope.all ? undefined : scope.studies;
  const parts = await mapLimited(plan.chunks, CHUNK_CONCURRENCY, async (chunk) => {
    const items = await fetchChunk(ctx, path, query, chunk, SORT_TAGS_AT[level], linked);
    return linked ? keepLinkedLogged(items, linked, chunk, req.log).kept : items;
  });
  const page = pageOfMerged(parts, qidoSortKey, query.offset, query.limit);
  const body = replaceAll(JSON.stringify(page), ctx.urls.rewrite);
  return reply.code(200).header('content-type', DICOM_JSON).send(body);
}

/** A chunk's complete answer; for a restricted caller (`linked`) with the PatientID it is filtered by. */
async function fetchChunk(
  ctx: DicomWebContext,
  path: string,
  query: QidoQuery,
  chunk: readonly string[],
  sortTags: readonly string[],
  linked?: LinkedStudies,
): Promise<DicomJson[]> {
  const c = linked ? linkedQuery(query, chunk, linked) : { query, include: [] };
  const include = [...sortTags, ...c.include];
  const qs = orthancQueryString(c.query, { studyUids: chunk, paging: null, extraInclude: include });
  return (await fetchQidoJson(ctx, `${ctx.dicomWebRoot}${path}?${qs}`)).items;
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** QIDO-RS: `/studies`. */
export const searchForStudies =
  (ctx: QidoContext) => (req: FastifyRequest<{ Params: PathParams }>, reply: FastifyReply) =>
    search('study', req, reply, ctx);
/** QIDO-RS: `/series`, `/studies/{study}/series`. */
export const searchForSeries =
  (ctx: QidoContext) => (req: FastifyRequest<{ Params: PathParams }>, reply: FastifyReply) =>
    search('series', req, reply, ctx);
/** QIDO-RS: `/instances`, `/studies/{study}/instances`, `/studies/{study}/series/{series}/instances`. */
export const searchForInstances =
  (ctx: QidoContext) => (req: FastifyRequest<{ Params: PathParams }>, reply: FastifyReply) =>
    search('instance', req, reply, ctx);

export async function qidoRoutes(app: FastifyInstance, opts: { context: QidoContext }) {
  const ctx = opts.context;
  app.get('/studies', searchForStudies(ctx));
  app.get('/series', searchForSeries(ctx));
  app.get('/instances', searchForInstances(ctx));
  app.get('/studies/:study/series', searchForSeries(ctx));
  app.get('/studies/:study/instances', searchForInstances(ctx));
  app.get('/studies/:study/series/:series/instances', searchForInstances(ctx));
}
