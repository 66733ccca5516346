/**
 * The separate metrics listener (`EHR_METRICS_LISTEN`, `host:port`): answers `GET /metrics` without a token and
 * nothing else, so that Prometheus can scrape the facade on a loopback or management address that the API port's
 * clients cannot reach (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config).
 */
import { createServer, type Server } from 'node:http';
import { registry } from './registry.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export class MetricsListenError extends EhrError {
  override readonly code: ErrorCode = 'EHR_METRICS_LISTEN';
  override name = 'MetricsListenError';
}

/** Parses `host:port` (IPv6 hosts in brackets). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MetricsListenError(`EHR_METRICS_LISTEN must be host:port (got "${value}")`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Starts the listener; resolves once it listens. */
export async function listenMetrics(value: string): Promise<Server> {
  const { host, port } = parseListen(value);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('metrics collection failed\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: this listener serves /metrics only\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
