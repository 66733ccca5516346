import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { DatabasePool } from 'slonik';
import type { Config } from '../config/spec.ts';
import { CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { guardPool, probeDatabase } from './breaker.ts';
import { migrate } from './migrate.ts';
import { createDatabasePool } from './pool.ts';

declare module 'fastify' {
  interface FastifyInstance {
    db: DatabasePool;
    /** The EHR database's circuit breaker (src/db/breaker.ts); `/readyz` reports it. */
    dbBreaker: CircuitBreaker;
  }
}

/**
 * Decorates the app with the EHR database pool, guarded by the database's circuit breaker; optionally migrates first;
 * closes the pool on shutdown.
 */
export const databasePlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    if (opts.config.migrateOnStart) {
      const level = await migrate(opts.config.databaseUrl);
      app.log.info({ migration: level }, 'database migrated');
    }
    const { config } = opts;
    const pool = await createDatabasePool(config);
    const breaker = new CircuitBreaker({
      name: 'database',
      retryMs: config.breakerRetryMs,
      maxRetryMs: config.breakerMaxRetryMs,
      heartbeatMs: config.breakerHeartbeatMs,
      probe: () => probeDatabase(config.databaseUrl, config.breakerProbeTimeoutMs),
      onChange: (state, reason) => {
        if (state === 'open') app.log.error({ dependency: 'database', state, reason }, 'circuit breaker open');
        else app.log.warn({ dependency: 'database', state, reason }, `circuit breaker ${state}`);
      },
    });
    app.decorate('db', guardPool(pool, breaker));
    app.decorate('dbBreaker', breaker);
    app.addHook('onClose', async () => {
      breaker.stop();
      await pool.end();
    });
  },
  { name: 'database' },
);
