import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { OrthancClient } from './client.ts';

declare module 'fastify' {
  interface FastifyInstance {
    orthanc: OrthancClient;
  }
}

/** Decorates the app with the typed Orthanc client. */
export const orthancPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const { orthancUrl, orthancUsername, orthancPassword, upstreamTimeoutMs } = opts.config;
    const client = new OrthancClient({
      url: orthancUrl,
      username: orthancUsername,
      password: orthancPassword,
      timeoutMs: upstreamTimeoutMs,
    });
    app.decorate('orthanc', client);
    app.addHook('onClose', async () => client.close());
  },
  { name: 'orthanc' },
);
