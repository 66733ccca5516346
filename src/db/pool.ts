import { createPool, type DatabasePool } from 'slonik';
import type { Config } from '../config/spec.ts';

/**
 * Creates the EHR database pool. Connections are opened lazily and re-opened after the server comes back,
 * so a PostgreSQL restart heals by itself; every statement has a time-out so that no request hangs.
 */
export async function createDatabasePool(config: Config): Promise<DatabasePool> {
  return createPool(config.databaseUrl, {
    maximumPoolSize: config.databasePoolSize,
    connectionTimeout: config.readyTimeoutMs,
    statementTimeout: config.upstreamTimeoutMs,
    idleTimeout: 10_000,
    connectionRetryLimit: 1,
    queryRetryLimit: 0,
  });
}
