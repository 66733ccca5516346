import { fileURLToPath } from 'node:url';
import pg from 'pg';
import Postgrator from 'postgrator';

/** Folder of the SQL migrations (`NNN.do.description.sql`), applied by postgrator. */
export const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));
const migrationPattern = `${migrationsDir}*.sql`;
/** Key of the advisory lock that serialises migrations across facade replicas. */
const MIGRATION_LOCK = 746_372_001;

export interface MigrationLevel {
  current: number;
  latest: number;
}

function postgrator(client: pg.Client): Postgrator {
  return new Postgrator({
    migrationPattern,
    driver: 'pg',
    schemaTable: 'schemaversion',
    validateChecksums: true,
    execQuery: (query: string) => client.query(query),
  });
}

/** Applies pending migrations under an advisory lock, so that concurrent replicas do not race. */
export async function migrate(databaseUrl: string): Promise<MigrationLevel> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    const p = postgrator(client);
    await p.migrate();
    return { current: await p.getDatabaseVersion(), latest: await p.getMaxVersion() };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end();
  }
}

/** The highest migration version available in `migrations/`. */
export async function latestMigrationVersion(): Promise<number> {
  const p = new Postgrator({ migrationPattern, driver: 'pg', execQuery: async () => ({ rows: [] }) });
  return p.getMaxVersion();
}
