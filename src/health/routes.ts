import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { latestMigrationVersion } from '../db/migrate.ts';
import { checkReadiness } from './checks.ts';

/**
 * `GET /healthz` (liveness: 200 while the process runs) and `GET /readyz` (200 only when the EHR database and
 * Orthanc both answer; otherwise 503 naming each failing dependency, with `Retry-After`). A dependency whose circuit
 * breaker is open fails at once with the breaker's reason (src/health/circuit-breaker.ts); the breakers' probes, not
 * `/readyz`, decide when it is back. Both are public: they reveal no patient data.
 */
export async function healthRoutes(app: FastifyInstance, opts: { readyTimeoutMs: number }): Promise<void> {
  const latest = await latestMigrationVersion();

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const readiness = await checkReadiness(
      {
        database: async () => {
          app.dbBreaker.check();
          const row = (await app.db.one(
            sql.unsafe`SELECT current_setting('server_version') AS version,
                         (SELECT coalesce(max(version), 0)::int FROM schemaversion) AS migration`,
          )) as { version: string; migration: number };
          const migration = { current: Number(row.migration), latest };
          if (migration.current < latest) throw new Error(`migrations pending: at ${migration.current} of ${latest}`);
          return { version: row.version, migration };
        },
        orthanc: async () => {
          app.orthanc.breaker?.check();
          // As a probe: a slow `/readyz` answer alone does not open the breaker (its heartbeat decides that).
          const system = await app.orthanc.system({ timeoutMs: opts.readyTimeoutMs, probe: true });
          return { version: system.Version, apiVersion: system.ApiVersion, database: system.DatabaseBackendPlugin };
        },
      },
      opts.readyTimeoutMs,
    );
    if (readiness.status !== 'ok') reply.header('retry-after', '5');
    return reply.code(readiness.status === 'ok' ? 200 : 503).send(readiness);
  });
}
