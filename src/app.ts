import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { AccessLog, stdoutLog } from './http/access-log.ts';
import type { Config } from './config/spec.ts';
import { auditFhirWrites, auditPlugin, type FhirWriteHooked } from './audit/plugin.ts';
import { auditEventRoutes } from './audit/routes.ts';
import { changeFeedPlugin } from './change-feed/plugin.ts';
import { accessPlugin } from './auth/plugin.ts';
import { databasePlugin } from './db/plugin.ts';
import { fhirPlugin } from './fhir/plugin.ts';
import { dicomWebPlugin } from './dicomweb/plugin.ts';
import { renderDicom, renderFhir, renderJson, sendRendered } from './errors/render.ts';
import { uploadApiPlugin } from './dicomweb/stow/upload-api.ts';
import { healthRoutes } from './health/routes.ts';
import { metricsHooks, metricsRoutes } from './metrics/plugin.ts';
import { openApiPlugin } from './openapi/plugin.ts';
import { orthancPlugin } from './orthanc/plugin.ts';
import { viewerPlugin } from './viewer/plugin.ts';
import { webAppPlugin } from './webapp/plugin.ts';
import { webApiRoutes } from './api/web-api.ts';
import { viewerUrlRoutes } from './api/viewer-url.ts';
import { auditedNotFound } from './http/not-found.ts';
import { API_RULES, OAUTH_RULES } from './http/route-rules.ts';
import { responseEnd } from './http/response-end.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Paths that pino must never write out. */
export const redactPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  '*.password',
  '*.client_secret',
  '*.access_token',
  '*.refresh_token',
  'password',
];

export interface BuildOptions {
  /** Where pino writes (tests capture it); stdout by default. */
  logStream?: { write(line: string): void };
}

/**
 * The composition root: registers plugins in a fixed order and returns the app without listening,
 * so that tests use `inject` or supertest.
 *
 * Order: logging and request ids → database → Orthanc client → health → access → FHIR → DICOMweb.
 */
export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const stdout = opts.logStream ? undefined : stdoutLog();
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: redactPaths, censor: '[redacted]' },
      serializers: {
        req: (req: { method: string; url: string; headers: Record<string, unknown>; ip?: string }) => ({
          method: req.method,
          url: req.url,
          ip: req.ip,
          headers: req.headers,
        }),
      },
      // Asynchronous, batched writes (src/http/access-log.ts): lines never block the event loop.
      stream: stdout?.stream ?? opts.logStream,
    },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    logController: new AccessLog({ requestIdLogLabel: 'requestId' }),
    trustProxy: config.trustProxy,
    bodyLimit: 1_048_576,
    // Node's default 16 KiB header limit would answer a huge bearer token with a bare 431; allow enough that the
    // resource server itself refuses it with a 401 and a reason (RFC 6750 §3.1).
    http: { maxHeaderSize: 131_072 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // A generic, stack-free error body for routes outside the FHIR and DICOMweb scopes (which have their own).
  app.setErrorHandler((err: Error, req, reply) => {
    const r = renderJson(err, req.id);
    if (r.statusCode === 503) {
      // A dependency down (e.g. the database while authenticating or auditing, before any scope's own handler):
      // 503 with Retry-After, shaped like the API that was called.
      req.log.warn({ reason: err.message }, 'request refused: dependency unavailable');
      // Shaped like the API that was called: the route's error dialect (src/http/route-rules.ts).
      const dialect = req.routeOptions.config.rules?.dialect;
      if (dialect === 'dicom') return sendRendered(reply, renderDicom(err));
      if (dialect === 'fhir') {
        return sendRendered(reply.type('application/fhir+json'), renderFhir(err, req.id));
      }
    } else if (!r.view.exposed) req.log.error({ err }, 'unexpected error');
    return sendRendered(reply, r);
  });

  // The one onResponse hook, which metrics and the audit share.
  await app.register(responseEnd);
  // Before every route: the OpenAPI generator and the request metrics see all routes.
  await app.register(openApiPlugin, { config });
  await app.register(metricsHooks, { config });
  await app.register(databasePlugin, { config });
  await app.register(orthancPlugin, { config });
  await app.register(healthRoutes, { readyTimeoutMs: config.readyTimeoutMs, databaseUrl: config.databaseUrl });
  // OHIF viewer (public files) and viewer links.
  await app.register(viewerPlugin, { config });
  // The viewer links (src/api/viewer-url.ts), which mint viewer tokens (an Access of kind `viewer`).
  await app.register(viewerUrlRoutes, { config });
  // The staff web app at /app/ (public files) and its OAuth client.
  await app.register(webAppPlugin, { config });
  // The resource server: the one root onRequest hook, which reads each route's rules and attaches req.access.
  await app.register(accessPlugin, { config });
  // Audit: req.audit on every request, exactly one AuditEvent per audited route's request, and /fhir/AuditEvent.
  await app.register(auditPlugin, { config });
  await app.register(auditEventRoutes, { config });
  // FHIR R4 API (/fhir): registered here.
  await app.register(fhirPlugin, {
    prefix: '/fhir',
    config,
    // Writes and Bundle entries commit their AuditEvents in the repository's own transactions.
    onRepository: (req, repo) => auditFhirWrites(req, repo as unknown as FhirWriteHooked, config.publicBaseUrl),
  });
  // DICOMweb (/dicom-web): registered here.
  await app.register(dicomWebPlugin, { config });
  await app.register(uploadApiPlugin, { config });
  // C-STORE ingest: consumer of Orthanc's /changes (background, leader only) and /api/v1/dicom/unmatched.
  await app.register(changeFeedPlugin, { config });
  // The web app's /api/v1/me and the admin API over users, grants and clients.
  await app.register(webApiRoutes);
  // GET /metrics (admin token; or the token-less EHR_METRICS_LISTEN) and the readings of caches and queues.
  await app.register(metricsRoutes);
  // Unknown paths under /api and /auth: 404, audited like those surfaces' routes.
  await app.register(auditedNotFound, { prefix: '/api', rules: API_RULES });
  await app.register(auditedNotFound, { prefix: '/auth', rules: { ...OAUTH_RULES, dialect: 'plain' } });
  // Last: lines logged while the app closes are still written.
  if (stdout) app.addHook('onClose', async () => stdout.stop());
  return app;
}
