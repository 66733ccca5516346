import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { viewerUrlRoutes } from '../api/viewer-url.ts';
import type { Config } from '../config/spec.ts';
import { ohifStatic } from './ohif-static.ts';
import { ensureOhifClient } from './oidc-client.ts';
import { viewerSessionRoutes } from './session-routes.ts';
import { bearerOf, checkViewerUse, viewerReachOf, viewerStudyOf } from './viewer-token.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the OHIF build and our app-config.js are, from the configuration (relative paths: the project folder). */
export function viewerPaths(config: Config): { distDir: string; appConfigFile: string } {
  const dist = config.ohifDistDir;
  return {
    distDir: isAbsolute(dist) ? dist : join(ROOT, dist),
    appConfigFile: join(ROOT, 'ohif-config', 'app-config.js'),
  };
}

/**
 * A viewer token's study search without a StudyInstanceUID (OHIF looks for the patient's other studies to fill its
 * study browser): answered as the same search narrowed to the token's study, so OHIF lists that study (and its
 * series) and nothing else. Run as an internal request through the whole pipeline (authentication, audit, QIDO-RS).
 */
async function narrowedSearch(app: FastifyInstance, req: FastifyRequest, reply: FastifyReply, study: string) {
  const q = req.url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  params.set('StudyInstanceUID', study);
  const headers: Record<string, string> = {};
  for (const name of ['authorization', 'accept', 'host', 'forwarded', 'x-forwarded-host', 'x-forwarded-proto']) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const inner = await app.inject({
    method: req.method === 'HEAD' ? 'HEAD' : 'GET',
    url: `/dicom-web/studies?${params}`,
    headers,
  });
  const type = inner.headers['content-type'];
  if (typeof type === 'string') reply.type(type);
  return reply.code(inner.statusCode).send(inner.rawPayload);
}

/**
 * The OHIF viewer issue's part of the facade. Registered before the resource server (src/app.ts), because the viewer's
 * files are public and are answered in an onRequest hook that must run before authentication (see ohif-static.ts).
 *
 * - the viewer-token guard: a request carrying a viewer token (src/viewer/viewer-token.ts) is refused unless it is a
 *   DICOMweb read of the token's study (of its patient's studies, for a patient-reach token) or a route of the viewer
 *   session (renewal, session check: session-routes.ts). It only ever narrows: the resource server has verified the
 *   token before (its onRequest hook runs first), and this hook runs for every route of the app, including those
 *   registered later;
 * - `GET /api/v1/dicom/viewer-url/{order_id}` and `GET /fhir/ServiceRequest/{id}/$viewer-url`;
 * - OHIF's OAuth client at the built-in authorization server (registered on start);
 * - the OHIF build itself, on the facade's origin.
 */
export const viewerPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    // preParsing: after every onRequest hook, so the resource server has verified the token (or refused it) first.
    app.addHook('preParsing', async (req, reply, payload) => {
      const token = bearerOf(req.headers.authorization);
      const study = token === undefined ? undefined : viewerStudyOf(token);
      if (study === undefined || token === undefined) return payload;
      // The viewer session's own routes (renewal, session check) are made for viewer tokens (src/viewer/renew.ts).
      if (req.routeOptions.config.viewerSession === true) return payload;
      const use = checkViewerUse(req.method, req.url, study, viewerReachOf(token));
      if (use.allowed) return payload;
      if (use.status === 200) return narrowedSearch(app, req, reply, study);
      req.log.info(
        { auth: { decision: 'deny', status: use.status, reason: use.reason, kind: 'viewer' } },
        'access denied',
      );
      if (use.status === 401) {
        reply.header('www-authenticate', `Bearer error="invalid_token", error_description="${use.reason}"`);
        return reply.code(401).send({ error: 'invalid_token', error_description: use.reason, requestId: req.id });
      }
      return reply.code(404).type('application/dicom+json').header('warning', `299 - "${use.reason}"`).send({});
    });

    // Logged-in use: OHIF signs users in at the built-in authorization server as a public client.
    if (opts.config.authBuiltinServer) await ensureOhifClient(app.db, opts.config.publicBaseUrl);
    await app.register(viewerUrlRoutes, { config: opts.config });
    await app.register(viewerSessionRoutes, { config: opts.config });
    // Called on this (root-level) instance, not registered: its onRequest hook must be a root hook (see ohif-static).
    await ohifStatic(app, {
      ...viewerPaths(opts.config),
      settings: { idleTimeoutS: opts.config.viewerIdleTimeoutS },
    });
  },
  { name: 'viewer' },
);
