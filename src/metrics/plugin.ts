/**
 * Prometheus metrics: request counts and durations for every route (after every response, src/http/response-end.ts),
 * upstream latency (upstream.ts), STOW-RS outcomes, cache and audit-queue readings, circuit breaker states
 * (breaker.ts), and `GET /metrics`.
 *
 * `GET /metrics` on the API port needs a bearer token of a user with the `admin` role. Scrapers use the separate
 * listener instead (`EHR_METRICS_LISTEN`, see listen.ts): metrics only, no token, meant for a loopback or
 * management-network address, the usual Prometheus practice.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { bearerSecurity, protectedErrors } from '../openapi/schemas.ts';
import { registerBreakerGauge } from './breaker.ts';
import { httpDuration, httpRequests, registerCounter, registerGauge, registry, stowInstances } from './registry.ts';
import { stowCounts, uploadCounts } from './stow-count.ts';
import { watchOrthanc } from './upstream.ts';

const UNMATCHED = 'unmatched';

function routeOf(req: FastifyRequest): string {
  return req.routeOptions.url ?? UNMATCHED;
}

/** Request metrics for every route; register before any route plugin. */
export const metricsHooks = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    watchOrthanc(opts.config.orthancUrl);
    // Shares the app's one onResponse hook (src/http/response-end.ts).
    app.afterResponse((req, reply) => {
      const route = routeOf(req);
      const status = reply.statusCode;
      httpRequests.inc({ method: req.method, route, status: String(status) });
      httpDuration.observe(
        { method: req.method, route, status_class: `${Math.floor(status / 100)}xx` },
        reply.elapsedTime / 1000,
      );
    });
  },
  { name: 'metrics-hooks', dependencies: ['response-end'] },
);

/**
 * Counts STOW-RS (and upload form) outcomes from the response body the client gets, so they match it exactly. Called
 * by the upload routes as they send (no hook: other routes pay nothing for it).
 */
export function countStored(kind: 'stow' | 'upload', status: number, body: unknown): void {
  if (status >= 500) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const counts = kind === 'stow' ? stowCounts(text) : uploadCounts(text);
  for (const c of counts) stowInstances.inc({ outcome: c.outcome, reason: c.reason }, c.count);
}

/** The exposition answer (text format 0.0.4). */
export async function sendMetrics(reply: FastifyReply): Promise<FastifyReply> {
  return reply
    .type(registry.contentType)
    .header('cache-control', 'no-store')
    .send(await registry.metrics());
}

/** May this caller read `/metrics` on the API port? */
export function mayReadMetrics(req: FastifyRequest): boolean {
  const access = req.access as FastifyRequest['access'] | null;
  return access?.kind === 'user' && access.agent.roles.includes('admin');
}

/** `GET /metrics` and the readings of caches and queues; register after the plugins it reads. */
export const metricsRoutes = fp(
  async (app: FastifyInstance) => {
    const series = (app as { dicomWebSeriesCache?: { stats: { hits: number; misses: number }; bytes: number } })
      .dicomWebSeriesCache;
    const callers = (app as { authCallerCache?: { size: number } }).authCallerCache;
    registerCounter(
      'ehr_cache_lookups_total',
      'Cache lookups by cache and result (hit, miss).',
      ['cache', 'result'],
      () =>
        series
          ? [
              { labels: { cache: 'dicomweb_series', result: 'hit' }, value: series.stats.hits },
              { labels: { cache: 'dicomweb_series', result: 'miss' }, value: series.stats.misses },
            ]
          : [],
    );
    registerGauge('ehr_cache_entries', 'Entries held by each cache.', ['cache'], () => [
      ...(callers ? [{ labels: { cache: 'auth_callers' }, value: callers.size }] : []),
    ]);
    registerGauge('ehr_cache_bytes', 'Bytes held by each cache.', ['cache'], () => [
      ...(series ? [{ labels: { cache: 'dicomweb_series' }, value: series.bytes }] : []),
    ]);
    registerBreakerGauge(() => [app.orthanc.breaker, app.dbBreaker].filter((b) => b !== undefined));

    app.get(
      '/metrics',
      {
        // Counters and timings only: no patient data, so not audited; the admin role is checked by the handler.
        config: { rules: { who: 'token', audit: { none: 'metrics: no patient data' }, dialect: 'plain' } },
        schema: {
          summary: 'Prometheus metrics',
          description:
            'Prometheus text exposition. Needs an admin user token here; scrapers use the token-less listener at `EHR_METRICS_LISTEN` (docs/metrics.md).',
          tags: ['operations'],
          security: bearerSecurity,
          response: {
            200: { description: 'Metrics in the Prometheus text format (version 0.0.4)', type: 'string' },
            ...protectedErrors,
          },
        },
      },
      async (req, reply) => {
        if (!mayReadMetrics(req)) {
          req.log.info({ authz: { decision: 'deny', resource: 'metrics' } }, 'access denied');
          return reply
            .code(403)
            .send({ error: 'insufficient_scope', error_description: 'metrics need the admin role', requestId: req.id });
        }
        return sendMetrics(reply);
      },
    );
  },
  { name: 'metrics-routes' },
);
