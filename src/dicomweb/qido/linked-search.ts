/**
 * QIDO-RS (DICOM PS3.18 §10.6) for a restricted caller answered by one Orthanc query: only the Orthanc studies the EHR
 * links under each allowed StudyInstanceUID may answer (access/linked-orthanc-studies.ts for why and how). Orthanc's answer is read
 * whole, filtered and sent with its public URLs rewritten. When nothing was withheld (the usual case: the linked
 * PatientID is a matching key of the query whenever the UIDs share one) the client gets Orthanc's own bytes, in the
 * content coding Orthanc chose for the client's Accept-Encoding as a relayed answer would (RFC 9110 §12.5.3; only
 * when no URL is rewritten, as in relay.ts): the facade decodes a copy to check it. The default instance QIDO of a
 * series goes through the series cache, filtered and identity-coded, under a key that names the linked Orthanc studies
 * (the same answer for every caller who may see the study).
 */
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { DicomWebError } from '../errors.ts';
import { keepLinked, type LinkedStudies, linkedQuery } from '../access/linked-orthanc-studies.ts';
import { replaceAll } from '../http/public-url.ts';
import { orthancQueryString, type QidoQuery } from '../qido-query.ts';
import { DICOM_JSON, type DicomWebContext, upstreamError } from '../relay.ts';
import { type CachedAnswer, seriesCacheKey } from '../cache/series-cache.ts';

export type DicomJson = Record<string, { Value?: unknown[] } | undefined>;

const SERIES_UID_TAG = '0020000E';

/** A QIDO-RS answer of Orthanc: its bytes as sent and their content coding, the decoded text and the items. */
export interface QidoAnswer {
  raw: Buffer;
  contentEncoding: string | undefined;
  text: string;
  items: DicomJson[];
}

/** Decodes a body in one of the content codings Orthanc (or a server in front of it) may use. */
export function decodeBody(raw: Buffer, contentEncoding: string | undefined): Buffer {
  const coding = (contentEncoding ?? '').trim().toLowerCase();
  if (coding === '' || coding === 'identity') return raw;
  if (coding === 'gzip' || coding === 'x-gzip') return gunzipSync(raw);
  if (coding === 'br') return brotliDecompressSync(raw);
  if (coding === 'deflate') {
    // RFC 9110 §8.4.1.2: zlib-wrapped; some servers send raw deflate.
    try {
      return inflateSync(raw);
    } catch {
      return inflateRawSync(raw);
    }
  }
  throw new DicomWebError(502, 'The image archive answered in an unknown content coding');
}

/** GETs a QIDO-RS answer (`url` below Orthanc's root) as DICOM JSON; `acceptEncoding` is passed on to Orthanc. */
export async function fetchQidoJson(ctx: DicomWebContext, url: string, acceptEncoding?: string): Promise<QidoAnswer> {
  const res = await ctx.proxy.get(url, { accept: DICOM_JSON, ...(acceptEncoding ? { acceptEncoding } : {}) });
  if (res.status !== 200) throw await upstreamError(res.status, res.body);
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const contentEncoding = res.headers['content-encoding'];
  const text = decodeBody(raw, contentEncoding).toString('utf8');
  const json: unknown = JSON.parse(text);
  if (!Array.isArray(json)) throw new DicomWebError(502, 'The image archive gave an unexpected answer');
  return { raw, contentEncoding, text, items: json as DicomJson[] };
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
  req: FastifyRequest,
  reply: FastifyReply,
  ctx: DicomWebContext,
  s: LinkedSearch,
): Promise<FastifyReply> {
  const cached = s.seriesDefault;
  if (!cached) {
    const given = req.headers['accept-encoding'];
    const acceptEncoding = ctx.urls.rewrite || typeof given !== 'string' ? undefined : given;
    const answer = await searchLinked(ctx, s, req.log, true, acceptEncoding);
    // The coding now depends on the request's Accept-Encoding (RFC 9110 §12.5.5), whatever Orthanc chose.
    if (acceptEncoding !== undefined) reply.header('vary', 'Accept-Encoding');
    if (answer.contentEncoding !== undefined) reply.header('content-encoding', answer.contentEncoding);
    return reply.code(200).header('content-type', DICOM_JSON).send(answer.body);
  }
  const linkedTo = [...(s.linked.get(cached.study)?.orthancIds ?? [])].sort().join(',');
  const key = seriesCacheKey({ ...cached, kind: 'instances', accept: '', publicRoot: ctx.urls.publicRoot, linkedTo });
  const hit = ctx.seriesCache.enabled ? ctx.seriesCache.get(key) : undefined;
  if (hit) return reply.code(200).headers(hit.headers).send(hit.body);
  const ticket = ctx.seriesCache.ticket(cached.study);
  // Asked without the study constraint the path already gives, as for every other caller; identity-coded.
  const { body } = await searchLinked(ctx, s, req.log, false);
  const answer: CachedAnswer = { headers: { 'content-type': DICOM_JSON, 'content-length': String(body.length) }, body };
  if (ctx.seriesCache.enabled && body.length <= ctx.seriesCache.maxEntryBytes) ctx.seriesCache.put(key, ticket, answer);
  return reply.code(200).headers(answer.headers).send(body);
}

/** Queries Orthanc, filters, and gives the body to send with its content coding (undefined: identity). */
async function searchLinked(
  ctx: DicomWebContext,
  s: LinkedSearch,
  log: FastifyBaseLogger,
  constrainStudies: boolean,
  acceptEncoding?: string,
): Promise<{ body: Buffer; contentEncoding?: string | undefined }> {
  const c = linkedQuery(s.query, s.studyUids, s.linked);
  const qs = orthancQueryString(c.query, {
    ...(constrainStudies ? { studyUids: s.studyUids } : {}),
    extraInclude: c.include,
  });
  const url = `${ctx.dicomWebRoot}${s.path}${qs ? `?${qs}` : ''}`;
  const { raw, contentEncoding, text, items } = await fetchQidoJson(ctx, url, acceptEncoding);
  const { kept, withheld } = keepLinkedLogged(items, s.linked, s.studyUids, log);
  if (s.onSeries) {
    const uids = kept.map((i) => i[SERIES_UID_TAG]?.Value?.[0]).filter((u): u is string => typeof u === 'string');
    if (uids.length) s.onSeries(uids);
  }
  const coded = contentEncoding !== undefined && !/^\s*(identity)?\s*$/i.test(contentEncoding);
  // Orthanc's own bytes (coded or not) when nothing was withheld and no URL needs rewriting.
  if (withheld === 0 && !ctx.urls.rewrite) return { body: raw, contentEncoding: coded ? contentEncoding : undefined };
  return { body: Buffer.from(replaceAll(withheld === 0 ? text : JSON.stringify(kept), ctx.urls.rewrite), 'utf8') };
}
