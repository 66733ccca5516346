import type { GcPacer } from '../http/gc-pacer.ts';
import { countStored } from '../../metrics/plugin.ts';
import { uploadRules } from '../../http/route-rules.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../config/spec.ts';
import { isValidUid } from '../../imaging/dicom-instance.ts';
import { parseContentType, parseMultipart } from './multipart-related.ts';
import {
  checkContentLength,
  continueIfExpected,
  closeAfterUnreadBody,
  installExpectHandling,
  limitedBody,
  pipelineOptions,
  requireAccess,
  stowFactory,
  UploadRequestError,
} from './wiring.ts';
import { warningHeader } from '../../errors/render.ts';
import { buildStowResponse } from './response.ts';
import { storeInstances } from './store-instances.ts';
import type { StowResult } from './store-types.ts';

/**
 * STOW-RS routes (DICOM PS3.18 §10.5): `POST /studies` and `POST /studies/{StudyInstanceUID}`, registered inside the
 * `/dicom-web` scope (whose error handler turns {@link UploadRequestError} into a DICOM-shaped 4xx).
 */

const SUPPORTED = 'multipart/related; type="application/dicom" (DICOM Part 10 instances, PS3.18 §10.5.1.1)';

/** Checks the request's Content-Type: returns the boundary, or throws 415/400 with what is supported. */
export function stowBoundary(contentType: string | undefined): string {
  const ct = parseContentType(contentType);
  if (!ct) throw new UploadRequestError(415, `Content-Type is missing or malformed; supported: ${SUPPORTED}`);
  if (ct.mediaType !== 'multipart/related') {
    throw new UploadRequestError(415, `${ct.mediaType} is not supported; supported: ${SUPPORTED}`);
  }
  const type = ct.params['type']?.toLowerCase();
  if (type !== undefined && type !== 'application/dicom') {
    throw new UploadRequestError(
      415,
      `multipart/related; type="${type}" (metadata and bulk data) is not supported; supported: ${SUPPORTED}`,
    );
  }
  const boundary = ct.params['boundary'];
  if (!boundary) throw new UploadRequestError(400, 'multipart/related without a boundary parameter');
  return boundary;
}

/** Part types taken as DICOM Part 10 in a STOW-RS request: application/dicom, application/octet-stream, or none. */
export const isDicomPartType = (t: string | undefined): boolean =>
  t === undefined || t === 'application/dicom' || t === 'application/octet-stream';

/** Sends a pipeline result as PS3.18 dicom+json; 400 when nothing in the body was a readable part. */
export function sendStowResult(
  reply: FastifyReply,
  result: StowResult,
  dicomWebBase: string,
  targetStudy?: string,
): FastifyReply {
  if (result.outcomes.length === 0) {
    throw new UploadRequestError(400, `not a readable multipart body: ${result.framingError ?? 'no parts'}`);
  }
  const r = buildStowResponse(result.outcomes, dicomWebBase, targetStudy);
  const warnings = result.framingError
    ? [...r.warnings, warningHeader(`the rest of the body was not readable: ${result.framingError}`)]
    : r.warnings;
  if (warnings.length) reply.header('warning', warnings);
  countStored('stow', r.status, r.body);
  return reply.code(r.status).header('content-type', 'application/dicom+json').send(r.body);
}

export async function stowRoutes(app: FastifyInstance, opts: { config: Config; gcPacer?: GcPacer }): Promise<void> {
  const { config } = opts;
  const pacer = opts.gcPacer;
  const onBytes = pacer ? (n: number) => pacer.note(n) : undefined;
  const depsFor = stowFactory(app, config);
  const dicomWebBase = `${config.publicBaseUrl}/dicom-web`;
  installExpectHandling(app.server);
  closeAfterUnreadBody(app);

  // The body is read by the handler as a stream (never by a content-type parser).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  const handler = async (req: FastifyRequest<{ Params: { study?: string } }>, reply: FastifyReply) => {
    const access = requireAccess(req);
    const targetStudy = req.params.study;
    // A URL study that is not a valid UID is not refused here: PS3.18 §10.5.3 answers it per instance, each
    // failing in the FailedSOPSequence with its SOP Class/Instance UIDs (409 when none is stored).
    const boundary = stowBoundary(req.headers['content-type']);
    checkContentLength(req, config.stowMaxRequestBytes);
    continueIfExpected(req, reply.raw);
    const parts = parseMultipart(limitedBody(req.raw, config.stowMaxRequestBytes, onBytes), {
      boundary,
      maxPartBytes: config.stowMaxInstanceBytes,
    });
    const result = await storeInstances(
      parts,
      depsFor(access),
      pipelineOptions(req, config, access, { source: 'stow', acceptPart: isDicomPartType, targetStudy }),
    );
    req.log.info(
      {
        stow: {
          instances: result.outcomes.length,
          stored: result.outcomes.filter((o) => o.kind === 'stored').length,
          bytes: result.bytes,
        },
      },
      'STOW-RS request handled',
    );
    const validTarget = targetStudy !== undefined && isValidUid(targetStudy) ? targetStudy : undefined;
    return sendStowResult(reply, result, dicomWebBase, validTarget);
  };
  const route = { config: { rules: uploadRules('dicom', 'dicom') } };
  app.post('/studies', route, handler);
  app.post<{ Params: { study: string } }>('/studies/:study', route, handler);
}
