/**
 * QIDO-RS (DICOM PS3.18 §10.6) for a restricted caller answered by one Orthanc query: only the Orthanc study the EHR
 * links under each allowed StudyInstanceUID may answer (linked-studies.ts for why and how). Orthanc's answer is read
 * whole, filtered by exact (StudyInstanceUID, PatientID) pairs and sent with its public URLs rewritten; it is Orthanc's
 * own text when nothing was withheld (the usual case, as the linked PatientID is a matching key of the query whenever
 * the UIDs share one). The default instance QIDO of a series goes through the series cache, filtered, under a key that
 * names the linked Orthanc studies (the same answer for every caller who may see the study).
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { DicomWebError } from './errors.ts';
import { keepLinked, type LinkedStudies, linkedQuery } from './linked-studies.ts';
import { replaceAll } from './public-url.ts';
import { orthancQueryString, type QidoQuery } from './qido-query.ts';
import { DICOM_JSON, type DicomWebContext, upstreamError } from './relay.ts';
import { type CachedAnswer, seriesCacheKey } from './series-cache.ts';

export type DicomJson = Record<string, { Value?: unknown[] } | undefined>;

const SERIES_UID_TAG = '0020000E';

/** GETs a QIDO-RS answer (`url` below Orthanc's root) as DICOM JSON, with its text. */
export async function fetchQidoJson(ctx: DicomWebContext, url: string): Promise<{ text: string; items: DicomJson[] }> {
  const res = await ctx.proxy.get(url, { accept: DICOM_JSON });
  if (res.status !== 200) throw await upstreamError(res.status, res.body);
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const json: unknown = JSON.parse(text);
  if (!Array.isArray(json)) throw new DicomWebError(502, 'The image archive gave an unexpected answer');
  return { text, items: json as DicomJson[] };
}

/** The answers of linked Orthanc studies; a trace when others were withheld (an anomaly worth knowing about). */
export function keepLinkedLogged<T extends DicomJson>(
  items: readonly T[],
  linked: LinkedStudies,
  studyUids: readonly string[],
  log: FastifyBaseLogger,
): { kept: T[]; withheld: number } {
  const out = keepLinked(items, linked);
  if (out.withheld > 0) {
    log.warn(
      { decision: 'withheld', withheld: out.withheld, studies: studyUids.slice(0, 20) },
      'qido: answers of Orthanc studies not linked under these study UIDs withheld',
    );
  }
  return out;
}

export interface LinkedSearch {
  /** The Orthanc path below the DICOMweb root (`/studies/{uid}/series`...). */
  path: string;
  query: QidoQuery;
  /** The allowed UIDs the plan searches (each in `linked`). */
  studyUids: readonly string[];
  linked: LinkedStudies;
  /** The path's study and series when this is the default instance QIDO of a series (cached). */
  seriesDefault?: { study: string; series: string } | undefined;
  /** Called with the series UIDs of a successful answer (series-level searches under a study path). */
  onSeries?: ((uids: string[]) => void) | undefined;
}

/** Answers a restricted single-query search (see the module comment). */
export async function answerLinked(
  reply: FastifyReply,
  ctx: DicomWebContext,
  s: LinkedSearch,
  log: FastifyBaseLogger,
): Promise<FastifyReply> {
  const cached = s.seriesDefault;
  if (!cached) {
    const body = await searchLinked(ctx, s, log, true);
    return reply.code(200).header('content-type', DICOM_JSON).send(body);
  }
  const linkedTo = [...(s.linked.get(cached.study)?.orthancIds ?? [])].sort().join(',');
  const key = seriesCacheKey({ ...cached, kind: 'instances', accept: '', publicRoot: ctx.urls.publicRoot, linkedTo });
  const hit = ctx.seriesCache.enabled ? ctx.seriesCache.get(key) : undefined;
  if (hit) return reply.code(200).headers(hit.headers).send(hit.body);
  const ticket = ctx.seriesCache.ticket(cached.study);
  // Asked without the study constraint the path already gives, as for every other caller.
  const body = await searchLinked(ctx, s, log, false);
  const answer: CachedAnswer = { headers: { 'content-type': DICOM_JSON, 'content-length': String(body.length) }, body };
  if (ctx.seriesCache.enabled && body.length <= ctx.seriesCache.maxEntryBytes) ctx.seriesCache.put(key, ticket, answer);
  return reply.code(200).headers(answer.headers).send(body);
}

async function searchLinked(
  ctx: DicomWebContext,
  s: LinkedSearch,
  log: FastifyBaseLogger,
  constrainStudies: boolean,
): Promise<Buffer> {
  const c = linkedQuery(s.query, s.studyUids, s.linked);
  const qs = orthancQueryString(c.query, {
    ...(constrainStudies ? { studyUids: s.studyUids } : {}),
    extraInclude: c.include,
  });
  const { text, items } = await fetchQidoJson(ctx, `${ctx.dicomWebRoot}${s.path}${qs ? `?${qs}` : ''}`);
  const { kept, withheld } = keepLinkedLogged(items, s.linked, s.studyUids, log);
  if (s.onSeries) {
    const uids = kept.map((i) => i[SERIES_UID_TAG]?.Value?.[0]).filter((u): u is string => typeof u === 'string');
    if (uids.length) s.onSeries(uids);
  }
  return Buffer.from(replaceAll(withheld === 0 ? text : JSON.stringify(kept), ctx.urls.rewrite), 'utf8');
}
