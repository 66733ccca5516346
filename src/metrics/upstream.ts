/**
 * Latency and errors of the facade's upstreams without touching their clients:
 * - Orthanc: Node's diagnostics channels of `fetch` (undici, https://undici.nodejs.org/#/docs/api/DiagnosticsChannel)
 *   and of `node:http` (https://nodejs.org/api/diagnostics_channel.html#http), keeping only requests to Orthanc's
 *   origin. Duration is from request creation until the response ended (or failed).
 * - PostgreSQL: a slonik interceptor timing every statement ({@link databaseInterceptor}).
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Interceptor } from 'slonik';
import { secondsSince, upstreamDuration, upstreamErrors } from './registry.ts';

const started = new WeakMap<object, bigint>();
const origins = new Set<string>();
let subscribed = false;

function record(upstream: string, start: bigint | undefined, outcome: 'ok' | 'error'): void {
  if (start === undefined) return;
  upstreamDuration.observe({ upstream, outcome }, secondsSince(start));
  if (outcome === 'error') upstreamErrors.inc({ upstream });
}

function hostOf(req: { getHeader?(n: string): unknown; host?: string; protocol?: string }): string {
  const host = req.getHeader?.('host');
  return `${req.protocol ?? 'http:'}//${typeof host === 'string' ? host : (req.host ?? '')}`;
}

/** Starts timing calls to `orthancUrl` (idempotent; several apps in one process add their origins). */
export function watchOrthanc(orthancUrl: string): void {
  origins.add(new URL(orthancUrl).origin);
  if (subscribed) return;
  subscribed = true;

  type UndiciMsg = { request: { origin?: string | URL }; response?: { statusCode: number } };
  const undiciOrigin = (m: UndiciMsg) =>
    m.request.origin === undefined ? '' : new URL(String(m.request.origin)).origin;
  subscribe('undici:request:create', (m) => {
    const msg = m as UndiciMsg;
    if (origins.has(undiciOrigin(msg))) started.set(msg.request, process.hrtime.bigint());
  });
  subscribe('undici:request:headers', (m) => {
    const msg = m as UndiciMsg;
    if ((msg.response?.statusCode ?? 0) >= 500) {
      record('orthanc', started.get(msg.request), 'error');
      started.delete(msg.request);
    }
  });
  subscribe('undici:request:trailers', (m) => {
    const msg = m as UndiciMsg;
    record('orthanc', started.get(msg.request), 'ok');
    started.delete(msg.request);
  });
  subscribe('undici:request:error', (m) => {
    const msg = m as UndiciMsg;
    record('orthanc', started.get(msg.request), 'error');
    started.delete(msg.request);
  });

  type HttpReq = { getHeader?(n: string): unknown; host?: string; protocol?: string };
  subscribe('http.client.request.start', (m) => {
    const req = (m as { request: HttpReq }).request;
    if (origins.has(hostOf(req))) started.set(req, process.hrtime.bigint());
  });
  subscribe('http.client.response.finish', (m) => {
    const { request, response } = m as { request: HttpReq; response: { statusCode?: number } };
    record('orthanc', started.get(request), (response.statusCode ?? 0) >= 500 ? 'error' : 'ok');
    started.delete(request);
  });
  subscribe('http.client.request.error', (m) => {
    const req = (m as { request: HttpReq }).request;
    record('orthanc', started.get(req), 'error');
    started.delete(req);
  });
}

const queryStart = new WeakMap<object, bigint>();

/** Times each PostgreSQL statement of a slonik pool and counts failed ones. */
export const databaseInterceptor: Interceptor = {
  name: 'ehr-metrics',
  beforeQueryExecution: (ctx) => {
    queryStart.set(ctx, process.hrtime.bigint());
    return null;
  },
  afterQueryExecution: (ctx) => {
    record('postgresql', queryStart.get(ctx), 'ok');
    queryStart.delete(ctx);
    return null;
  },
  queryExecutionError: (ctx) => {
    record('postgresql', queryStart.get(ctx), 'error');
    queryStart.delete(ctx);
    return null;
  },
};
