import { declareRules, publicRoute } from '../http/route-rules.ts';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { probeDatabase } from '../db/breaker.ts';
import { latestMigrationVersion } from '../db/migrate.ts';
import { checkReadiness } from './checks.ts';

/**
 * `GET /healthz` (liveness: 200 while the process runs) and `GET /readyz` (200 only when the EHR database and
 * Orthanc both answer; otherwise 503 naming each failing dependency, with `Retry-After`). `/readyz` asks each
 * dependency directly (bounded by `readyTimeoutMs`), also while its circuit breaker is open (src/resilience/circuit-breaker.ts):
 * an answer closes the breaker at once, so an orchestrator polling `/readyz` sees recovery as soon as it happens; a
 * slow answer alone does not open it (the breaker's heartbeat decides that). Both are public: they reveal no patient
 * data.
 */
export async function healthRoutes(
  app: FastifyInstance,
  opts: { readyTimeoutMs: number; databaseUrl: string },
): Promise<void> {
  const latest = await latestMigrationVersion();

  declareRules(app, publicRoute('health probe: no patient data'));
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const readiness = await checkReadiness(
      {
        database: async () => {
          if (app.dbBreaker.state !== 'closed') {
            try {
              await probeDatabase(opts.databaseUrl, opts.readyTimeoutMs);
            } catch (err) {
              const e = err as Error & { code?: string };
              throw new Error(`database unavailable: ${e.code ?? e.message}`);
            }
            app.dbBreaker.success();
          }
          const row = (await app.db.one(
            sql.unsafe`SELECT current_setting('server_version') AS version,
                         (SELECT coalesce(max(version), 0)::int FROM schemaversion) AS migration`,
          )) as { version: string; migration: number };
          const migration = { current: Number(row.migration), latest };
          if (migration.current < latest) throw new Error(`migrations pending: at ${migration.current} of ${latest}`);
          return { version: row.version, migration };
        },
        orthanc: async () => {
          const system = await app.orthanc.system({ timeoutMs: opts.readyTimeoutMs, probe: true });
          app.orthanc.breaker?.success();
          return { version: system.Version, apiVersion: system.ApiVersion, database: system.DatabaseBackendPlugin };
        },
      },
      opts.readyTimeoutMs,
    );
    if (readiness.status !== 'ok') reply.header('retry-after', '5');
    return reply.code(readiness.status === 'ok' ? 200 : 503).send(readiness);
  });
}
