import { createPool, type DatabasePool, sql } from 'slonik';

/** Advisory-lock key of the change-feed consumer (the migration lock is 746_372_001). */
export const CONSUMER_LOCK = 746_372_009;

/** Tag on the leader's connection in `pg_stat_activity` (operators, and tests that kill the leader's session). */
export const LEADER_APPLICATION_NAME = 'ehr-change-feed-leader';

export interface LeadershipOptions {
  databaseUrl: string;
  /** How often a standby tries to take the lock, and how often the leader checks that its session is alive. */
  retryMs: number;
  connectionTimeoutMs: number;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

function withApplicationName(url: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', LEADER_APPLICATION_NAME);
  return u.toString();
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * Exactly one consumer across replicas: the leader holds a session-level PostgreSQL advisory lock
 * (https://www.postgresql.org/docs/15/explicit-locking.html#ADVISORY-LOCKS) on a dedicated connection of its own
 * one-connection pool. If the leader's process or connection dies, PostgreSQL ends the session and drops the lock;
 * a standby polling `pg_try_advisory_lock` takes over within `retryMs`. The leader checks its session every
 * `retryMs` and stops leading when it is gone. (The cursor's compare-and-set is the second line of defence.)
 */
export class Leadership {
  readonly #opts: LeadershipOptions;
  readonly #pool: Promise<DatabasePool>;
  #leading = false;

  constructor(opts: LeadershipOptions) {
    this.#opts = opts;
    this.#pool = createPool(withApplicationName(opts.databaseUrl), {
      maximumPoolSize: 1,
      connectionTimeout: opts.connectionTimeoutMs,
      statementTimeout: opts.connectionTimeoutMs,
      idleTimeout: 'DISABLE_TIMEOUT',
      connectionRetryLimit: 0,
      queryRetryLimit: 0,
    });
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Until `stop` aborts: waits for the lock, then runs `lead` with a signal that aborts when leadership is lost or
   * `stop` fires. Errors of `lead` are its own business (it should not throw); connection errors are retried.
   */
  async run(stop: AbortSignal, lead: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const pool = await this.#pool;
    while (!stop.aborted) {
      try {
        await pool.connect(async (conn) => {
          const got = await conn.oneFirst(sql.unsafe`SELECT pg_try_advisory_lock(${CONSUMER_LOCK}) AS got`);
          if (got !== true) return;
          const lost = new AbortController();
          const heartbeat = setInterval(() => {
            conn.query(sql.unsafe`SELECT 1`).catch(() => lost.abort());
          }, this.#opts.retryMs);
          this.#leading = true;
          this.#opts.log.info({ lock: CONSUMER_LOCK }, 'change feed: this replica leads');
          try {
            await lead(AbortSignal.any([stop, lost.signal]));
          } finally {
            clearInterval(heartbeat);
            this.#leading = false;
            if (lost.signal.aborted) this.#opts.log.warn({}, 'change feed: leadership lost (database session ended)');
            await conn.query(sql.unsafe`SELECT pg_advisory_unlock(${CONSUMER_LOCK})`).catch(() => undefined);
          }
        });
      } catch (err) {
        this.#opts.log.warn({ err }, 'change feed: leader election failed, retrying');
      }
      await sleep(this.#opts.retryMs, stop);
    }
  }

  async close(): Promise<void> {
    await (await this.#pool).end();
  }
}

export { sleep };
