/**
 * The app's one `onResponse` hook: what must happen once a response has been sent (request metrics, the audit's
 * safety net) registers a listener here instead of a hook of its own, so that every request pays for one hook.
 * Registered first (src/app.ts), at the root.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

export type ResponseListener = (req: FastifyRequest, reply: FastifyReply) => Promise<void> | void;

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs `listener` after every response, in registration order (one shared `onResponse` hook). */
    afterResponse(listener: ResponseListener): void;
  }
}

export const responseEnd = fp(
  async (app: FastifyInstance) => {
    const listeners: ResponseListener[] = [];
    app.decorate('afterResponse', (listener: ResponseListener) => {
      listeners.push(listener);
    });
    app.addHook('onResponse', async (req, reply) => {
      for (const listener of listeners) {
        try {
          await listener(req, reply);
        } catch (err) {
          req.log.error({ err }, 'after-response listener failed');
        }
      }
    });
  },
  { name: 'response-end' },
);
