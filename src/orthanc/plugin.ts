import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { OrthancClient } from './client.ts';

declare module 'fastify' {
  interface FastifyInstance {
    orthanc: OrthancClient;
  }
}

/**
 * Decorates the app with the typed Orthanc client and Orthanc's circuit breaker (`app.orthanc.breaker`, shared with
 * the DICOMweb proxy): a refused connection or a time-out opens it, `GET /system` probes close it again.
 */
export const orthancPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { orthancUrl, orthancUsername, orthancPassword, upstreamTimeoutMs } = opts.config;
    const { breakerRetryMs, breakerMaxRetryMs, breakerHeartbeatMs, breakerProbeTimeoutMs } = opts.config;
    let client: OrthancClient | undefined;
    const breaker = new CircuitBreaker({
      name: 'orthanc',
      retryMs: breakerRetryMs,
      maxRetryMs: breakerMaxRetryMs,
      heartbeatMs: breakerHeartbeatMs,
      probe: () => client!.system({ timeoutMs: breakerProbeTimeoutMs, probe: true }),
      onChange: (state, reason) => {
        if (state === 'open') app.log.error({ dependency: 'orthanc', state, reason }, 'circuit breaker open');
        else app.log.warn({ dependency: 'orthanc', state, reason }, `circuit breaker ${state}`);
      },
    });
    client = new OrthancClient({
      url: orthancUrl,
      username: orthancUsername,
      password: orthancPassword,
      timeoutMs: upstreamTimeoutMs,
      breaker,
    });
    app.decorate('orthanc', client);
    app.addHook('onClose', async () => {
      breaker.stop();
      client.close();
    });
  },
  { name: 'orthanc' },
);
