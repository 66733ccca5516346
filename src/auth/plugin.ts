import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { type Access, DEVELOPMENT_ACCESS } from './access.ts';

declare module 'fastify' {
  interface FastifyRequest {
    access: Access;
  }
}

/**
 * Attaches the caller's {@link Access} to every request. Until the authorization issue lands this is the
 * development context, and only in development mode: production refuses every request that needs access.
 */
export const accessPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    app.decorateRequest('access', null as unknown as Access);
    app.addHook('onRequest', async (req) => {
      if (opts.config.mode === 'development') req.access = DEVELOPMENT_ACCESS;
    });
  },
  { name: 'access' },
);
