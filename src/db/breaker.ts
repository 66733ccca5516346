/**
 * The EHR database's circuit breaker (src/resilience/circuit-breaker.ts) around the slonik pool: every pool method checks
 * it first (failing fast with {@link DependencyUnavailableError} while the database is known to be down) and reports
 * whether the database answered. Only faults of the connection count (refused, reset, terminated, no answer in time);
 * an SQL error is an answer.
 */
import pg from 'pg';
import type { DatabasePool } from 'slonik';
import { FAULT_CODES, isDatabaseFault } from '../errors/database-fault.ts';
import type { CircuitBreaker } from '../resilience/circuit-breaker.ts';

/** Pool methods that reach the database (and are guarded). */
const GUARDED = new Set([
  'any',
  'anyFirst',
  'connect',
  'exists',
  'many',
  'manyFirst',
  'maybeOne',
  'maybeOneFirst',
  'one',
  'oneFirst',
  'query',
  'stream',
  'transaction',
]);

export { isDatabaseFault };

/** The pool, with each database call guarded by `breaker`. */
export function guardPool(pool: DatabasePool, breaker: CircuitBreaker): DatabasePool {
  const wrap = (fn: (...args: unknown[]) => unknown) =>
    function guarded(this: unknown, ...args: unknown[]) {
      breaker.check();
      const out = fn.apply(pool, args);
      if (!(out instanceof Promise)) return out;
      return out.then(
        (v) => {
          breaker.success();
          return v;
        },
        (err: unknown) => {
          if (isDatabaseFault(err)) breaker.failure(describe(err));
          else breaker.success();
          throw err;
        },
      );
    };
  return new Proxy(pool, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof prop === 'string' && GUARDED.has(prop) && typeof value === 'function'
        ? wrap(value as (...args: unknown[]) => unknown)
        : value;
    },
  });
}

function describe(err: unknown): string {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code } = e as { code?: unknown };
    if (typeof code === 'string' && FAULT_CODES.has(code)) return code;
  }
  return (err as Error).message ?? 'connection fault';
}

/** The breaker's probe: a fresh connection (never a pooled one that may be stuck) runs `SELECT 1` within `timeoutMs`. */
export async function probeDatabase(databaseUrl: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs + 500);
  });
  try {
    await Promise.race([client.connect().then(() => client.query('SELECT 1')), deadline]);
  } finally {
    clearTimeout(timer);
    // A server that hangs right now would never answer the goodbye of `end()`: bounded, then the socket is dropped.
    await goodbye(client);
  }
}

/** Ends a probe's connection politely (no "unexpected EOF" in the server log) but waits at most 1 s for it. */
export async function goodbye(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, 1000);
    }),
  ]);
  clearTimeout(timer);
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
