import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { DatabasePool } from 'slonik';
import type { Config } from '../config/spec.ts';
import { migrate } from './migrate.ts';
import { createDatabasePool } from './pool.ts';

declare module 'fastify' {
  interface FastifyInstance {
    db: DatabasePool;
  }
}

/** Decorates the app with the EHR database pool; optionally migrates first; closes the pool on shutdown. */
export const databasePlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    if (opts.config.migrateOnStart) {
      const level = await migrate(opts.config.databaseUrl);
      app.log.info({ migration: level }, 'database migrated');
    }
    const pool = await createDatabasePool(opts.config);
    app.decorate('db', pool);
    app.addHook('onClose', async () => {
      await pool.end();
    });
  },
  { name: 'database' },
);
