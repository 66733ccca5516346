import { countStored } from '../../metrics/plugin.ts';
import { uploadRules } from '../../http/route-rules.ts';
import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config/spec.ts';
import { renderJson, sendRendered } from '../../errors/render.ts';
import { parseContentType } from './multipart-related.ts';
import { parseFormData } from './multipart-form.ts';
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
import { hex } from './response.ts';
import { storeInstances } from './store-instances.ts';
import type { StowResult } from './store-types.ts';

/**
 * The founding design's upload API for browser forms: `POST /api/v1/dicom/upload` with `multipart/form-data` holding
 * one or more `.dcm` files, through the same pipeline as STOW-RS. Answers JSON
 * `{success, message, study_instance_uid, order_id, accepted, rejected: [{file, reason}]}` with the STOW-RS status
 * rules (200 all stored, 202 some rejected, 409 none stored; 400/401/413/415 for the request).
 */
export interface UploadApiResponse {
  success: boolean;
  message: string;
  study_instance_uid: string | null;
  order_id: string | null;
  accepted: number;
  rejected: { file: string; reason: string }[];
}

export function uploadResponse(result: StowResult): { status: 200 | 202 | 409; body: UploadApiResponse } {
  const stored = result.outcomes.filter((o) => o.kind === 'stored');
  const rejected = result.outcomes.flatMap((o) =>
    o.kind === 'failed'
      ? [{ file: o.file ?? o.sopInstanceUid ?? `file ${o.part + 1}`, reason: `${o.detail} (0x${hex(o.reason)})` }]
      : [],
  );
  const studies = [...new Set(stored.map((o) => o.studyInstanceUid))];
  const orders = [...new Set(result.recorded.map((r) => r.orderId))];
  const status = stored.length === 0 ? 409 : rejected.length > 0 || stored.some((o) => o.warning) ? 202 : 200;
  const message =
    stored.length === 0
      ? `No file was stored (${rejected.length} rejected)`
      : rejected.length === 0
        ? `Study uploaded: ${stored.length} instance${stored.length === 1 ? '' : 's'} stored`
        : `${stored.length} stored, ${rejected.length} rejected`;
  return {
    status,
    body: {
      success: status === 200,
      message,
      study_instance_uid: studies.length === 1 ? studies[0]! : null,
      order_id: orders.length === 1 ? orders[0]! : null,
      accepted: stored.length,
      rejected,
    },
  };
}

async function uploadScope(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;
  const depsFor = stowFactory(app, config);
  installExpectHandling(app.server);
  closeAfterUnreadBody(app);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.setErrorHandler((err: FastifyError, req, reply) => {
    // Nothing was kept: the upload API's own shape around the plain JSON error.
    const r = renderJson(err, req.id);
    if (!r.view.exposed) req.log.error({ err }, 'upload failed');
    const { error: message, code, requestId } = r.body;
    return sendRendered(reply, { ...r, body: { success: false, message, code, accepted: 0, rejected: [], requestId } });
  });

  app.post('/api/v1/dicom/upload', { config: { rules: uploadRules('api', 'plain') } }, async (req, reply) => {
    const access = requireAccess(req);
    const ct = parseContentType(req.headers['content-type']);
    if (ct?.mediaType !== 'multipart/form-data') {
      throw new UploadRequestError(415, 'send multipart/form-data with one or more .dcm files');
    }
    if (!ct.params['boundary']) throw new UploadRequestError(400, 'multipart/form-data without a boundary parameter');
    checkContentLength(req, config.stowMaxRequestBytes);
    continueIfExpected(req, reply.raw);
    const body = Readable.from(limitedBody(req.raw, config.stowMaxRequestBytes));
    const result = await storeInstances(
      parseFormData(body, req.headers, { maxPartBytes: config.stowMaxInstanceBytes }),
      depsFor(access),
      pipelineOptions(req, config, access, { source: 'upload', acceptPart: () => true }),
    );
    if (result.outcomes.length === 0) {
      throw new UploadRequestError(400, `no files in the form${result.framingError ? `: ${result.framingError}` : ''}`);
    }
    const r = uploadResponse(result);
    countStored('upload', r.status, r.body);
    return reply.code(r.status).send(r.body);
  });
}

/** Registers the upload API (its own scope: stream body, JSON errors). */
export const uploadApiPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    await app.register(uploadScope, opts);
  },
  { name: 'dicom-upload-api', dependencies: ['database', 'orthanc', 'access'] },
);
