/**
 * The audit plugin with its storage removed (benchmark only, see audit-off-hooks.ts): every request still gets its
 * `req.audit` context, so handlers run unchanged, but no AuditEvent is written by the hooks. Events a handler
 * appends inside its own transaction (writes) are still stored; reads, which the benchmark measures, store none.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { AuditContext } from '../src/audit/context.ts';
import { auditOf } from '../src/audit/plugin.ts';
import type { Config } from '../src/config/spec.ts';

export * from '../src/audit/plugin.ts';

export const auditPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const baseUrl = opts.config.publicBaseUrl;
    app.decorateRequest('audit', null as unknown as AuditContext);
    app.addHook('onRequest', async (req) => {
      auditOf(req, baseUrl);
    });
  },
  { name: 'audit', dependencies: ['database'] },
);
