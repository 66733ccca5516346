/**
 * WADO-URI (DICOM PS3.18 §9, formerly PS3.18 "URI Service"): `GET /dicom-web/wado?requestType=WADO&studyUID=...
 * &seriesUID=...&objectUID=...`, authorized on `studyUID` exactly like WADO-RS (same 404 for unknown and forbidden;
 * for a restricted caller the object must be in the linked Orthanc study, access/resource-membership.ts), then relayed to
 * Orthanc's WADO-URI endpoint, which checks that the object belongs to the given series and study.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadDicomWebRequestError } from '../errors.ts';
import { orthancQuery } from '../qido-query.ts';
import {
  annotation,
  CHARSET,
  checkQuery,
  decimal,
  integerIn,
  notPassedOn,
  oneOf,
  type QueryRules,
  quality,
  refused,
  toOrthanc,
  uid,
} from './query-rules.ts';
import { authorizeStudy } from '../access/authorize-study.ts';
import { type DicomWebContext, relay } from '../relay.ts';

/** Orthanc's WADO-URI path (its `DicomWeb.WadoRoot`, default `/wado`). */
export const ORTHANC_WADO_URI_PATH = '/wado';

/** Media types Orthanc's WADO-URI answers (DICOMweb plugin 1.7: the DICOM file, or a JPEG or PNG rendering). */
export const WADO_URI_CONTENT_TYPES = ['application/dicom', 'image/jpeg', 'image/png'] as const;

/**
 * The WADO-URI parameters of PS3.18 §9 the facade accepts. Orthanc's WADO-URI reads only `requestType`, the three UIDs
 * and `contentType`, so only those are passed on; the presentation parameters are validated and not applied (Orthanc
 * ignores them: the object or its default rendering is returned). `anonymize` is refused: Orthanc would return the
 * object with its identifiers, the opposite of what was asked.
 */
export const WADO_URI_RULES = {
  requestType: toOrthanc(oneOf(['WADO']), true),
  studyUID: toOrthanc(uid, true),
  seriesUID: toOrthanc(uid, true),
  objectUID: toOrthanc(uid, true),
  contentType: toOrthanc(oneOf(WADO_URI_CONTENT_TYPES)),
  charset: CHARSET,
  anonymize: notPassedOn(refused('the image archive cannot de-identify objects')),
  annotation: notPassedOn(annotation),
  rows: notPassedOn((v, n) => String(integerIn(v, n, 1, 65535))),
  columns: notPassedOn((v, n) => String(integerIn(v, n, 1, 65535))),
  region: notPassedOn(region),
  windowCenter: notPassedOn((v, n) => String(decimal(v, n))),
  windowWidth: notPassedOn((v, n) => {
    if (decimal(v, n) <= 0) throw new BadDicomWebRequestError(`${n} must be > 0`);
    return v;
  }),
  frameNumber: notPassedOn((v, n) => String(integerIn(v, n, 1, 999_999_999))),
  imageQuality: notPassedOn(quality),
  presentationUID: notPassedOn(uid),
  presentationSeriesUID: notPassedOn(uid),
  transferSyntax: notPassedOn(uid),
} satisfies QueryRules;

/** `region=xmin,ymin,xmax,ymax`: fractions of the image from 0.0 to 1.0, min below max (PS3.18 §9). */
export function region(value: string, name: string): string {
  const parts = value.split(',');
  const n = parts.map((p) => decimal(p, name));
  const [x0 = 0, y0 = 0, x1 = 0, y1 = 0] = n;
  if (parts.length !== 4 || n.some((v) => v < 0 || v > 1) || x0 >= x1 || y0 >= y1) {
    throw new BadDicomWebRequestError(`${name} must be xmin,ymin,xmax,ymax within 0.0 to 1.0 (got "${value}")`);
  }
  return value;
}

export interface WadoUriRequest {
  studyUid: string;
  seriesUid: string;
  objectUid: string;
  /** The query string for Orthanc (validated parameters only). */
  query: string;
}

/** Validates a WADO-URI query string against {@link WADO_URI_RULES}. */
export function parseWadoUri(queryString: string): WadoUriRequest {
  const checked = checkQuery(WADO_URI_RULES, queryString, 'WADO-URI');
  return {
    studyUid: checked.values.get('studyUID') as string,
    seriesUid: checked.values.get('seriesUID') as string,
    objectUid: checked.values.get('objectUID') as string,
    query: orthancQuery(checked.orthanc),
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
