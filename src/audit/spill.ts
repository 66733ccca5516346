/**
 * The audit spill: where AuditEvents go when PostgreSQL cannot take them. Without it, a request whose event cannot
 * be committed answers 503 (plugin.ts) and the attempt is recorded nowhere; with it (the default), the event is
 * appended to a durable local outbox (outbox.ts: written and fdatasync'd before the response completes) and shipped
 * into the hash chain once PostgreSQL is back, so an attempt that failed because the database was down is still
 * audited and `bin/ehr audit verify` passes afterwards.
 *
 * Layout: one sub-directory per facade app (`<root>/<pid>-<random>`), opened only when the first event spills, so
 * that several processes (and several apps in one test process) share a root without sharing an outbox. On start,
 * sub-directories left by processes that are gone are taken over and shipped (their LOCK names a dead pid).
 * Spilled events already carry their ids, and every shipment skips ids already stored: an event whose first append
 * committed although its caller saw an error is not chained twice.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChainAppender } from './chain-appender.ts';
import type { AuditItem } from './compact.ts';
import { AuditOutbox, OutboxLockedError, type OutboxLog } from './outbox.ts';
import type { AuditDb } from './store.ts';

export interface SpillOptions {
  readonly root: string;
  readonly shipIntervalMs: number;
  readonly log: OutboxLog;
}

export class AuditSpill {
  readonly #db: AuditDb;
  readonly #appender: ChainAppender;
  readonly #opts: SpillOptions;
  #own: Promise<AuditOutbox> | undefined;
  #ownOutbox: AuditOutbox | undefined;
  #ownDir: string | undefined;
  /** Outboxes of processes that are gone, shipping what they left. */
  readonly #adopted: AuditOutbox[] = [];
  #adoptedDirs: string[] = [];

  private constructor(db: AuditDb, appender: ChainAppender, opts: SpillOptions) {
    this.#db = db;
    this.#appender = appender;
    this.#opts = opts;
  }

  /** Creates the root and takes over what processes that are gone left in it. */
  static async open(db: AuditDb, appender: ChainAppender, opts: SpillOptions): Promise<AuditSpill> {
    const spill = new AuditSpill(db, appender, opts);
    await mkdir(opts.root, { recursive: true, mode: 0o700 });
    for (const entry of await readdir(opts.root, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(opts.root, entry.name);
      try {
        // Opening ships the left-over segments (or keeps retrying in the background while PostgreSQL is down).
        spill.#adopted.push(await AuditOutbox.open(db, appender, spill.#outboxOptions(dir)));
        spill.#adoptedDirs.push(dir);
        opts.log.warn({ dir }, 'audit spill: took over events left by a stopped process');
      } catch (err) {
        if (!(err instanceof OutboxLockedError)) throw err;
      }
    }
    return spill;
  }

  #outboxOptions(dir: string) {
    return { dir, shipIntervalMs: this.#opts.shipIntervalMs, log: this.#opts.log, alwaysCheckStored: true };
  }

  /** Events spilled (by this app or taken over) and not yet in PostgreSQL. */
  get pending(): number {
    return this.#adopted.reduce((n, o) => n + o.pending, 0) + (this.#ownOutbox?.pending ?? 0);
  }

  /** Appends durably (fdatasync'd) and resolves with the events as they will be stored (ids assigned). */
  async append(events: readonly AuditItem[]): Promise<AuditItem[]> {
    if (!this.#own) {
      this.#ownDir = join(this.#opts.root, `${process.pid}-${randomUUID().slice(0, 8)}`);
      this.#own = AuditOutbox.open(this.#db, this.#appender, this.#outboxOptions(this.#ownDir)).then((o) => {
        this.#ownOutbox = o;
        return o;
      });
      this.#own.catch(() => {
        this.#own = undefined;
      });
    }
    return (await this.#own).append(events);
  }

  /** Ships what it holds (rejects while PostgreSQL refuses them). */
  async drain(): Promise<void> {
    for (const o of this.#adopted) await o.drain();
    await this.#ownOutbox?.drain();
  }

  /** Ships what it can, releases its directories and removes those left empty. */
  async close(): Promise<void> {
    const all = [...this.#adopted.map((o, k) => [o, this.#adoptedDirs[k]] as const)];
    if (this.#own) all.push([await this.#own, this.#ownDir]);
    for (const [outbox, dir] of all) {
      await outbox.close();
      if (dir && outbox.pending === 0) await removeIfEmpty(dir);
    }
  }
}

/** Removes a spill directory that holds no segment any more (only a LOCK, if anything). */
async function removeIfEmpty(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.some((n) => n !== 'LOCK')) return;
  await rm(join(dir, 'LOCK'), { force: true });
  await rmdir(dir).catch(() => undefined);
}

const UNAVAILABLE_NAMES = new Set(['ConnectionError', 'BackendTerminatedError']);
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

/**
 * Whether an append failed because PostgreSQL is unreachable or going away (what the spill is for), as opposed to
 * PostgreSQL refusing the events (an SQL error: those keep failing the request with a 503). Looks through `cause`:
 * slonik's connection errors, Node's socket errors, and SQLSTATE class 08 (connection exception) and 57P01-57P03
 * (shutdown, crash shutdown, cannot connect now; https://www.postgresql.org/docs/15/errcodes-appendix.html).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    const { name, code, message, dependency } = e as {
      name?: unknown;
      code?: unknown;
      message?: unknown;
      dependency?: unknown;
    };
    if (typeof name === 'string' && UNAVAILABLE_NAMES.has(name)) return true;
    // The database's circuit breaker is open (src/resilience/circuit-breaker.ts): the pool refused without trying.
    if (name === 'DependencyUnavailableError' && dependency === 'database') return true;
    if (typeof code === 'string' && (UNAVAILABLE_ERRNO.has(code) || /^(08...|57P0[123])$/.test(code))) return true;
    if (
      typeof message === 'string' &&
      /Connection terminated|connection timeout|timeout exceeded when trying to connect|query read timeout/i.test(
        message,
      )
    ) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
