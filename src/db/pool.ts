import pg from 'pg';
import { createPool, type DatabasePool } from 'slonik';
import type { Config } from '../config/spec.ts';
import { databaseInterceptor } from '../metrics/upstream.ts';

/**
 * Creates the EHR database pool. Connections are opened lazily and re-opened after the server comes back,
 * so a PostgreSQL restart heals by itself; every statement has a time-out so that no request hangs.
 *
 * No `DISCARD ALL` on release (slonik's default `resetConnection`): it costs one more round trip after every query
 * outside a transaction, and nothing here leaves session state on a pooled connection. Settings are transaction-local
 * (`set_config(…, true)`), the per-item relink lock is released in a `finally` on the same connection
 * (src/change-feed/resolve.ts), and the session-level locks and LISTEN use connections of their own (change-feed
 * leadership, auth change listener, migrations). Keep it that way: no `SET`, temporary tables or session locks on
 * pooled connections without undoing them before release.
 */
export async function createDatabasePool(config: Config): Promise<DatabasePool> {
  // `statementTimeout` is enforced by the server, so a hung server (SIGSTOP, a wedged host) never enforces it: the
  // client gives up on its own a little later (node-postgres `query_timeout`; slonik has no option for it, hence the
  // driver default). The margin lets a live server's statement time-out win, which is an answer, not an outage.
  pg.defaults.query_timeout = config.upstreamTimeoutMs + 2000;
  return createPool(config.databaseUrl, {
    maximumPoolSize: config.databasePoolSize,
    connectionTimeout: config.readyTimeoutMs,
    statementTimeout: config.upstreamTimeoutMs,
    idleTimeout: 10_000,
    connectionRetryLimit: 1,
    queryRetryLimit: 0,
    resetConnection: async () => {},
    // Statement latency and errors for /metrics (src/metrics/upstream.ts).
    interceptors: [databaseInterceptor],
  });
}
