/**
 * A not-found handler for a path prefix that carries route rules (src/http/route-rules.ts), so that a request to an
 * unknown path under an audited surface (`/api`, `/auth`) is audited like that surface's routes. It answers what
 * Fastify's default not-found handler answers, with or without a token.
 */
import type { FastifyInstance } from 'fastify';
import type { RouteRules } from './route-rules.ts';

export async function auditedNotFound(app: FastifyInstance, opts: { rules: RouteRules }): Promise<void> {
  app.setNotFoundHandler({ config: { rules: opts.rules } } as object, (req, reply) =>
    reply.code(404).send({ message: `Route ${req.method}:${req.url} not found`, error: 'Not Found', statusCode: 404 }),
  );
}
