/**
 * WADO-URI (DICOM PS3.18 §9, formerly PS3.18 "URI Service"): `GET /dicom-web/wado?requestType=WADO&studyUID=...
 * &seriesUID=...&objectUID=...`, authorized on `studyUID` exactly like WADO-RS (same 404 for unknown and forbidden;
 * for a restricted caller the object must be in the linked Orthanc study, linked-resources.ts), then relayed to
 * Orthanc's WADO-URI endpoint, which checks that the object belongs to the given series and study.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadDicomWebRequestError } from './errors.ts';
import { hasControlOrBackslash, isUid, orthancQuery } from './qido-query.ts';
import { authorizeStudy, type DicomWebContext, relay } from './relay.ts';

/** Orthanc's WADO-URI path (its `DicomWeb.WadoRoot`, default `/wado`). */
export const ORTHANC_WADO_URI_PATH = '/wado';

const REQUIRED_UIDS = ['studyUID', 'seriesUID', 'objectUID'] as const;
/** Optional parameters of PS3.18 §9.1.2 passed on to Orthanc. */
const OPTIONAL = new Set([
  'contentType',
  'charset',
  'anonymize',
  'annotation',
  'rows',
  'columns',
  'region',
  'windowCenter',
  'windowWidth',
  'frameNumber',
  'imageQuality',
  'presentationUID',
  'presentationSeriesUID',
  'transferSyntax',
]);

export interface WadoUriRequest {
  studyUid: string;
  seriesUid: string;
  objectUid: string;
  /** The query string for Orthanc (validated parameters only). */
  query: string;
}

/** Validates a WADO-URI query string. */
export function parseWadoUri(queryString: string): WadoUriRequest {
  const params = new URLSearchParams(queryString);
  const out: Array<readonly [string, string]> = [];
  const seen = new Set<string>();
  for (const [k, v] of params) {
    if (seen.has(k)) throw new BadDicomWebRequestError(`${k.slice(0, 40)} is given more than once`);
    seen.add(k);
    if (k === 'requestType') {
      if (v !== 'WADO') throw new BadDicomWebRequestError('requestType must be WADO');
    } else if ((REQUIRED_UIDS as readonly string[]).includes(k)) {
      if (!isUid(v)) throw new BadDicomWebRequestError(`${k}: "${v.slice(0, 80)}" is not a valid UID`);
    } else if (!OPTIONAL.has(k)) {
      throw new BadDicomWebRequestError(`Unsupported WADO-URI parameter "${k.slice(0, 80)}"`);
    } else if (v.length > 256 || hasControlOrBackslash(v)) {
      throw new BadDicomWebRequestError(`${k}: value is not valid`);
    }
    out.push([k, v]);
  }
  if (!seen.has('requestType')) throw new BadDicomWebRequestError('requestType=WADO is required');
  for (const k of REQUIRED_UIDS) if (!seen.has(k)) throw new BadDicomWebRequestError(`${k} is required`);
  return {
    studyUid: params.get('studyUID') as string,
    seriesUid: params.get('seriesUID') as string,
    objectUid: params.get('objectUID') as string,
    query: orthancQuery(out),
  };
}

/** WADO-URI retrieval of one object. */
export const retrieveWadoUri = (ctx: DicomWebContext) => async (req: FastifyRequest, reply: FastifyReply) => {
  const q = req.url.indexOf('?');
  const parsed = parseWadoUri(q >= 0 ? req.url.slice(q + 1) : '');
  await authorizeStudy(req, ctx, parsed.studyUid, { series: parsed.seriesUid, instance: parsed.objectUid });
  return relay(req, reply, ctx, `${ORTHANC_WADO_URI_PATH}?${parsed.query}`, { root: '' });
};

export async function wadoUriRoutes(app: FastifyInstance, opts: { context: DicomWebContext }) {
  app.get('/wado', retrieveWadoUri(opts.context));
}
