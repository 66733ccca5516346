/**
 * The `/dicom-web` Fastify scope: QIDO-RS, WADO-RS and WADO-URI in front of Orthanc (DICOM PS3.18), filtered per
 * caller through the shared access policy, with DICOM-shaped errors, CORS for configured origins only, and the
 * bearer token taken from the `Authorization` header only. STOW-RS registers its routes in this scope too.
 */
import { pipeline, Readable } from 'node:stream';
import cors from '@fastify/cors';
import type { FastifyInstance, FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify';
import { declareRules, dicomWebRules } from '../http/route-rules.ts';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { OrthancProxy } from '../orthanc/proxy.ts';
import { NOT_FOUND_MESSAGE } from './errors.ts';
import { renderDicom, renderDicomStatus, sendRendered } from '../errors/render.ts';
import { onStudyContentChanged } from '../imaging/study-links.ts';
import { carriesUrls, publicUrlRewrite } from './http/forwarded-url.ts';
import { collectRoutes, registerMethodNotAllowed } from './http/method-not-allowed.ts';
import { PUBLIC_DICOMWEB_PATH, planPublicUrls, ReplaceStream } from './http/public-url.ts';
import { type QidoContext, qidoRoutes } from './qido/routes.ts';
import { StudyAnswersStore } from './qido/study-answers-store.ts';
import { GcPacer, minorGcFunction, RELAY_GC_EVERY_BYTES } from './http/gc-pacer.ts';
import { ResourceMembership } from './access/resource-membership.ts';
import { fetchSeriesMetadata, MetadataPrefetch } from './qido/metadata-prefetch.ts';
import { SeriesCache } from './cache/series-cache.ts';
import { StoredSyntaxes } from './cache/stored-syntax.ts';
import { STUDY_CHANGE_ORIGIN, StudyChangeListener } from './cache/study-change-listener.ts';
import { stowRoutes } from './stow/routes.ts';
import { StudyIndex } from './access/study-index.ts';
import { wadoRoutes } from './wado/wado-rs-routes.ts';
import { wadoUriRoutes } from './wado/wado-uri-routes.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The DICOMweb study index cache: call `invalidate(studyUid)` after changing a study ↔ patient link. */
    studyIndex: StudyIndex;
    /** The streaming Orthanc client of the DICOMweb proxy (diagnostics: requests in flight). */
    dicomWebProxy: OrthancProxy;
    /** The cache of Orthanc's series answers (diagnostics and tests: hits, misses, stored). */
    dicomWebSeriesCache: SeriesCache;
    /** Series metadata warm-ups after series QIDO-RS (diagnostics and tests: stats, `settled()`). */
    dicomWebMetadataPrefetch: MetadataPrefetch;
    /** Study-level QIDO-RS answers kept by the EHR (diagnostics and tests: searches answered, studies fetched). */
    qidoStudyIndex: StudyAnswersStore;
    /** Other replicas' study changes reaching the caches above (undefined when every cache is off). */
    dicomWebStudyChanges: StudyChangeListener | undefined;
  }
}

/** How often the caches drop their expired entries. */
const CACHE_SWEEP_MS = 10_000;

/** Sends a DICOM-shaped error: status, `application/dicom+json` ErrorComment, and the reason in a `Warning` header. */
export function sendDicomError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return sendRendered(reply, renderDicomStatus(status, message));
}

/** The scope's error and not-found handlers: DICOM-shaped bodies, 5xx logged, never a stack to the client. */
export function installDicomErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const rendered = renderDicom(err);
    const { statusCode: status, message } = rendered.view;
    // A client that went away mid-answer (viewers cancel prefetches all the time) is not a server fault.
    // (Not `req.raw.destroyed`: a request stream is auto-destroyed once its body has been read completely.)
    if (reply.raw.destroyed || req.raw.socket?.destroyed === true) {
      req.log.info({ reason: (err as Error).message }, 'dicomweb client went away');
      reply.raw.destroy();
      return reply;
    }
    if (status >= 500) req.log.error({ err }, 'dicomweb error');
    else req.log.info({ status, reason: message }, 'dicomweb request refused');
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return reply;
    }
    return sendRendered(reply, rendered);
  });
  // Unknown DICOMweb paths: audited like the scope's routes (src/http/route-rules.ts), answered 404 with or without a token.
  app.setNotFoundHandler(
    { config: { rules: { who: 'token', audit: 'dicom', dialect: 'dicom' } } } as object,
    (_req: FastifyRequest, reply: FastifyReply) => sendDicomError(reply, 404, NOT_FOUND_MESSAGE),
  );
}

/**
 * Behind a trusted proxy (`EHR_TRUST_PROXY`), answers follow the public host the request came through
 * (`Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto`, see forwarded-url.ts): RetrieveURL and BulkDataURI in JSON
 * and XML bodies and the Location/Content-Location headers, all built with `EHR_PUBLIC_BASE_URL`, are rewritten.
 */
function forwardedHostRewrite(config: Config): onSendHookHandler | undefined {
  if (!config.trustProxy) return undefined;
  return async (req, reply, payload) => {
    const rw = publicUrlRewrite(req.headers, config.publicBaseUrl, true, PUBLIC_DICOMWEB_PATH);
    if (!rw) return payload;
    for (const name of ['location', 'content-location']) {
      const v = reply.getHeader(name);
      if (typeof v === 'string' && v.startsWith(rw.from)) reply.header(name, rw.to + v.slice(rw.from.length));
    }
    if (!carriesUrls(String(reply.getHeader('content-type') ?? ''))) return payload;
    const hadLength = reply.hasHeader('content-length');
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
      const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : payload;
      if (!text.includes(rw.from)) return payload;
      const out = text.split(rw.from).join(rw.to);
      if (hadLength) reply.header('content-length', Buffer.byteLength(out));
      return out;
    }
    if (payload instanceof Readable) {
      reply.removeHeader('content-length');
      return pipeline(payload, new ReplaceStream(rw.from, rw.to), () => {});
    }
    return payload;
  };
}

/**
 * Adds the forwarded-host rewrite as a route-level onSend hook to the routes whose answers can carry the facade's URLs
 * (QIDO-RS, metadata, STOW-RS): not to frames, rendered images, thumbnails, bulk data or whole-resource retrieves,
 * whose bodies are pixel data or DICOM files.
 */
function rewriteForForwardedHost(app: FastifyInstance, config: Config): void {
  const rewrite = forwardedHostRewrite(config);
  if (!rewrite) return;
  app.addHook('onRoute', (route) => {
    if (!carriesFacadeUrls(route.url)) return;
    route.onSend = [rewrite, ...[route.onSend ?? []].flat()];
  });
}

/** Does the route at `url` answer with the facade's URLs (RetrieveURL, BulkDataURI, Location)? */
export function carriesFacadeUrls(url: string): boolean {
  const last = url.split('/').filter(Boolean).pop() ?? '';
  return ['studies', 'series', 'instances', 'metadata', ':study'].includes(last);
}

async function dicomWebScope(app: FastifyInstance, opts: { config: Config; context: QidoContext }) {
  const { config } = opts;
  // Every route's rules (reads accept viewer tokens; the resource server also refuses a token in the query string).
  declareRules(app, dicomWebRules);
  const origins = config.dicomwebCorsOrigins.split(',').filter(Boolean);
  // CORS only for configured origins: without any, no hook is registered (a pre-flight then answers 404, as before).
  if (origins.length > 0) {
    await app.register(cors, {
      origin: origins,
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['Authorization', 'Accept', 'Content-Type', 'X-Request-Id'],
      exposedHeaders: ['Content-Type', 'Content-Length', 'Warning', 'X-Request-Id', 'Allow'],
      maxAge: 600,
    });
  }

  installDicomErrorHandling(app);
  rewriteForForwardedHost(app, config);

  const routes = collectRoutes(app);
  await app.register(qidoRoutes, { context: opts.context });
  await app.register(wadoRoutes, { context: opts.context });
  await app.register(wadoUriRoutes, { context: opts.context });
  // STOW-RS (POST /studies, /studies/{study}): registered here; the body's chunks are paced like relayed ones.
  await app.register(stowRoutes, { config, gcPacer: opts.context.gcPacer });
  // Other methods on these resources: 405 with Allow, not 404 (RFC 9110 §15.5.6).
  registerMethodNotAllowed(app, routes, sendDicomError);
}

/**
 * Registers `/dicom-web` and decorates the app with `studyIndex` (for link invalidation).
 * The Orthanc proxy pool and the index cache are created once here, so requests do no set-up work.
 */
export const dicomWebPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { config } = opts;
    const urls = planPublicUrls(config.publicBaseUrl, config.orthancDicomWebRoot);
    const proxy = new OrthancProxy({
      url: config.orthancUrl,
      authorization: app.orthanc.authorization,
      timeoutMs: config.upstreamTimeoutMs,
      forwarded: urls.forwarded,
      breaker: app.orthanc.breaker,
    });
    const index = new StudyIndex(app.db, config.dicomwebAccessCacheTtlMs);
    app.decorate('studyIndex', index);
    app.decorate('dicomWebProxy', proxy);
    const seriesCache = new SeriesCache({
      maxBytes: config.dicomwebCacheMaxBytes,
      ttlMs: config.dicomwebCacheTtlMs,
      maxEntryBytes: config.dicomwebCacheMaxEntryBytes,
    });
    const studyAnswers = new StudyAnswersStore({
      db: app.db,
      proxy,
      dicomWebRoot: config.orthancDicomWebRoot,
      publicRoot: urls.publicRoot,
      maxUids: config.dicomwebQidoMaxUids,
      maxAgeMs: config.dicomwebQidoIndexMaxAgeMs,
      origin: STUDY_CHANGE_ORIGIN,
    });
    const resources = new ResourceMembership(proxy, config.dicomwebAccessCacheTtlMs);
    const stopInvalidation = onStudyContentChanged((uid) => {
      seriesCache.invalidate(uid);
      resources.invalidate(uid);
      studyAnswers.invalidateSoon(uid, (err) => app.log.error({ err, study: uid }, 'qido study index invalidation'));
    });
    app.decorate('dicomWebSeriesCache', seriesCache);
    app.decorate('qidoStudyIndex', studyAnswers);
    // Other replicas' changes (NOTIFY from the `imaging_studies` triggers); the caches serve only while this LISTEN is up.
    const changes =
      seriesCache.enabled || config.dicomwebAccessCacheTtlMs > 0
        ? new StudyChangeListener({
            databaseUrl: config.databaseUrl,
            caches: [seriesCache, index, resources],
            log: app.log,
          })
        : undefined;
    app.decorate('dicomWebStudyChanges', changes);
    await changes?.start();
    const gcPacer = new GcPacer(RELAY_GC_EVERY_BYTES, minorGcFunction());
    const metadataPrefetch = new MetadataPrefetch({
      enabled: config.dicomwebMetadataPrefetch,
      maxSeriesPerStudy: config.dicomwebMetadataPrefetchMaxSeries,
      concurrency: config.dicomwebMetadataPrefetchConcurrency,
      cache: seriesCache,
      publicRoot: urls.publicRoot,
      fetch: (study, series, signal) =>
        fetchSeriesMetadata(
          {
            proxy,
            dicomWebRoot: config.orthancDicomWebRoot,
            urls,
            maxBytes: () => seriesCache.maxEntryBytes,
            note: (n) => gcPacer.note(n),
          },
          study,
          series,
          signal,
        ),
    });
    app.decorate('dicomWebMetadataPrefetch', metadataPrefetch);
    // Expired answers leave the caches as they expire, so that memory an idle facade held for them goes back.
    const sweeper = setInterval(() => {
      seriesCache.sweep();
      index.sweep();
      resources.sweep();
    }, CACHE_SWEEP_MS);
    sweeper.unref();
    app.addHook('onClose', async () => {
      clearInterval(sweeper);
      await metadataPrefetch.close();
      await changes?.stop();
      stopInvalidation();
      seriesCache.invalidate();
      index.close();
      await studyAnswers.settled();
      await proxy.close();
    });
    const context: QidoContext = {
      proxy,
      index,
      dicomWebRoot: config.orthancDicomWebRoot,
      maxUids: config.dicomwebQidoMaxUids,
      renderedMaxViewport: config.dicomwebRenderedMaxViewport,
      urls,
      seriesCache,
      studyAnswers,
      resources,
      metadataPrefetch,
      gcPacer,
      storedSyntaxes: new StoredSyntaxes(app.orthanc),
    };
    await app.register(dicomWebScope, { prefix: '/dicom-web', config, context });
  },
  { name: 'dicomweb', dependencies: ['database', 'orthanc', 'access'] },
);
