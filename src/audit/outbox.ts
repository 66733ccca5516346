/**
 * The durable audit outbox (opt-in: `EHR_AUDIT_OUTBOX_DIR`). A read's AuditEvent must be durable before the
 * response completes, or go through a durable outbox that a crash cannot lose. In the default mode every read
 * batch is committed to PostgreSQL before its responses are released (plugin.ts, chain-appender.ts). With the outbox,
 * a batch is instead appended to a local segment file and fdatasync'd (durable on the facade's own disk) before its
 * responses are released; a background shipper links the events into the hash chain and inserts them into PostgreSQL
 * in large batches. The database work leaves the request path, and it is paid once per shipped batch instead of per
 * group commit.
 *
 * Guarantees:
 * - **A crash cannot lose an acknowledged event.** Lines are written and fdatasync'd before `append` resolves, and a
 *   new segment's directory entry is fsync'd when it is created. On start, every segment left behind is read again
 *   and shipped before the facade serves (a torn, unterminated last line is dropped: no client saw its batch
 *   complete, outbox-segment.ts).
 * - **Exactly once in the chain.** Events carry their id from the moment they are accepted. A segment is deleted only
 *   after all of its events committed; after a crash or a failed ship whose outcome is unknown, the ids already in
 *   `audit_event` are skipped.
 * - **Order.** Events are shipped in the order they were accepted, so the chain holds each process's reads in order.
 *   Events that handlers commit inside their own transaction (FHIR writes, STOW-RS) still go to PostgreSQL directly;
 *   between the two, the chain's order is the order of arrival in the database (`recorded` keeps the access time).
 * - **One process per directory** (a LOCK file naming the pid; a second process refuses to start).
 * - While PostgreSQL is unreachable, reads keep being answered and recorded on disk; shipping retries with backoff.
 * - FHIR AuditEvent reads and searches ship this process's outbox first (routes.ts), so a process's own recent events
 *   are visible; other processes' events appear within their ship interval.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sql } from 'slonik';
import type { ChainAppender } from './chain-appender.ts';
import type { AuditItem } from './compact.ts';
import { OutboxCorruptError, parseSegment, segmentLines, segmentName, segmentNumber } from './outbox-segment.ts';
import type { AuditDb } from './store.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Most events linked and inserted in one shipping statement. */
export const SHIP_MAX = 500;
/** A segment is sealed (and shipped) once it holds this many events, whatever the interval. */
const SEGMENT_MAX_EVENTS = 2000;
const MAX_BACKOFF_MS = 10_000;

/** Another live process holds the outbox directory. */
export class OutboxLockedError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_OUTBOX_LOCKED';
  override name = 'OutboxLockedError';
  constructor(dir: string, pid: number) {
    super(`audit outbox ${dir} is in use by process ${pid}: each facade process needs its own directory`);
  }
}

/** The outbox was closed: nothing more is accepted. */
export class OutboxClosedError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_OUTBOX_CLOSED';
  override name = 'OutboxClosedError';
  constructor() {
    super('audit outbox is closed');
  }
}

type LogFn = (obj: Record<string, unknown>, msg: string) => void;
export interface OutboxLog {
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
}

export interface OutboxOptions {
  readonly dir: string;
  /** How long accepted events wait before they are shipped (unless a segment fills up first). */
  readonly shipIntervalMs: number;
  readonly log: OutboxLog;
  /**
   * Skip ids already in `audit_event` on every shipment (the spill, spill.ts: its events were first offered to
   * PostgreSQL, and an append may have committed although its caller saw an error).
   */
  readonly alwaysCheckStored?: boolean;
}

interface Segment {
  readonly n: number;
  readonly file: string;
  readonly events: AuditItem[];
  /** How many of `events` are committed in PostgreSQL. */
  shipped: number;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class AuditOutbox {
  readonly #db: AuditDb;
  readonly #appender: ChainAppender;
  readonly #opts: OutboxOptions;
  /** The segment being appended to, and its open file. */
  #current: (Segment & { fh: FileHandle }) | undefined;
  /** Sealed segments, oldest first, waiting to be shipped. */
  readonly #sealed: Segment[] = [];
  #nextN: number;
  /** Appends and seals run one after another (a seal must not close a file a write is using). */
  #io: Promise<unknown> = Promise.resolve();
  #shipping: Promise<void> | undefined;
  /** Events whose fate is known (committed, or found already stored). */
  #settled = 0;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** A ship failed after possibly committing: skip ids already stored before the next one. */
  #uncertain = false;
  #closed = false;
  readonly stats = { appended: 0, shipped: 0, recovered: 0, skippedDuplicates: 0, tornLines: 0, shipFailures: 0 };

  private constructor(db: AuditDb, appender: ChainAppender, opts: OutboxOptions, nextN: number) {
    this.#db = db;
    this.#appender = appender;
    this.#opts = opts;
    this.#nextN = nextN;
  }

  /** Takes the directory (creating it), recovers what a previous process left behind and ships it. */
  static async open(db: AuditDb, appender: ChainAppender, opts: OutboxOptions): Promise<AuditOutbox> {
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await takeLock(opts.dir);
    let outbox: AuditOutbox;
    try {
      const names = (await readdir(opts.dir))
        .map((name) => ({ name, n: segmentNumber(name) }))
        .filter((s): s is { name: string; n: number } => s.n !== undefined)
        .sort((a, b) => a.n - b.n);
      outbox = new AuditOutbox(db, appender, opts, (names.at(-1)?.n ?? 0) + 1);
      for (const { name, n } of names) await outbox.#recover(name, n);
    } catch (err) {
      await releaseLock(opts.dir);
      throw err;
    }
    if (outbox.#sealed.length) {
      outbox.#uncertain = true; // a previous process may have committed some of them before it stopped
      await outbox.drain().catch((err: unknown) => {
        opts.log.error({ err }, 'audit outbox: recovered events could not be shipped yet; retrying');
      });
    }
    return outbox;
  }

  async #recover(name: string, n: number): Promise<void> {
    const file = join(this.#opts.dir, name);
    let parsed: { events: AuditItem[]; torn: boolean };
    try {
      parsed = parseSegment(await readFile(file, 'utf8'));
    } catch (err) {
      if (!(err instanceof OutboxCorruptError)) throw err;
      // Kept for an operator, never silently dropped or half-shipped.
      await rename(file, `${file}.corrupt`);
      this.#opts.log.error({ err, file: `${file}.corrupt` }, 'audit outbox: corrupt segment set aside, not shipped');
      return;
    }
    if (parsed.torn) {
      this.stats.tornLines++;
      this.#opts.log.warn({ file }, 'audit outbox: dropped a torn last line (its batch was never acknowledged)');
    }
    this.stats.recovered += parsed.events.length;
    this.#sealed.push({ n, file, events: parsed.events, shipped: 0 });
  }

  /** Events accepted but not yet committed in PostgreSQL. */
  get pending(): number {
    return this.#accepted() - this.#settled;
  }

  /**
   * Appends `events` durably and gives them ids where missing; resolves with the events as they will be stored, once
   * they are written and fdatasync'd. Writes happen one after another in call order; the fdatasync of one call may
   * overlap the next call's write (the audit writer keeps several batches in flight: group-commit.ts), and whichever
   * fdatasync ends covers every line written before it started.
   */
  async append(events: readonly AuditItem[]): Promise<AuditItem[]> {
    if (this.#closed) throw new OutboxClosedError();
    const withIds = events.map((e): AuditItem => (e.id ? e : { ...e, id: randomUUID() }));
    const lines = segmentLines(withIds);
    const synced = await this.#serial(async () => {
      const seg = this.#current ?? (await this.#openSegment());
      await seg.fh.write(lines);
      // Shipping them before they are fdatasync'd is harmless: PostgreSQL's commit is durable in its own right.
      seg.events.push(...withIds);
      this.stats.appended += withIds.length;
      if (seg.events.length >= SEGMENT_MAX_EVENTS) this.#schedule(0);
      else this.#schedule(this.#opts.shipIntervalMs);
      // Started here, before a seal can close the handle (a handle closes only after its pending operations).
      return { done: seg.fh.datasync() };
    });
    await synced.done;
    return withIds;
  }

  /** Events accepted: appended by this process or recovered from a previous one. */
  #accepted(): number {
    return this.stats.appended + this.stats.recovered;
  }

  /**
   * Ships every event accepted before the call (not those arriving meanwhile, so that it ends under load too);
   * rejects when PostgreSQL refused them (they stay in the outbox).
   */
  async drain(): Promise<void> {
    const goal = this.#accepted();
    while (this.#settled < goal) {
      await (this.#shipping ?? this.#startShip());
      if (this.#failures > 0) throw new Error('audit outbox could not ship its events (see the log)');
    }
  }

  /** Stops accepting events, ships what is left (as far as the database allows) and releases the directory. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#io.catch(() => undefined);
    await this.drain().catch((err: unknown) => {
      this.#opts.log.error({ err, pending: this.pending }, 'audit outbox: events left on disk, shipped on next start');
    });
    await this.#serial(async () => this.#seal());
    await releaseLock(this.#opts.dir);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#io.then(fn);
    this.#io = run.catch(() => undefined);
    return run;
  }

  async #openSegment(): Promise<Segment & { fh: FileHandle }> {
    const n = this.#nextN++;
    const file = join(this.#opts.dir, segmentName(n));
    const fh = await open(file, 'wx', 0o600);
    await fsyncPath(this.#opts.dir); // the new file's directory entry is durable before any of its lines counts
    this.#current = { n, file, events: [], shipped: 0, fh };
    return this.#current;
  }

  /** Closes the current segment and queues it for shipping (inside #serial). */
  async #seal(): Promise<void> {
    const seg = this.#current;
    if (!seg) return;
    this.#current = undefined;
    await seg.fh.close();
    if (seg.events.length) this.#sealed.push(seg);
    else await unlink(seg.file);
  }

  #schedule(ms: number): void {
    if (this.#shipping || this.#closed) return;
    if (this.#timer && ms === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#startShip();
    }, ms);
  }

  #startShip(): Promise<void> {
    if (this.#shipping) return this.#shipping;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#shipping = this.#ship().finally(() => {
      this.#shipping = undefined;
      if (this.pending > 0 && !this.#closed) {
        this.#schedule(this.#failures ? Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.#failures) : 0);
      }
    });
    return this.#shipping;
  }

  async #ship(): Promise<void> {
    await this.#serial(async () => this.#seal());
    try {
      for (let seg = this.#sealed[0]; seg; seg = this.#sealed[0]) {
        while (seg.shipped < seg.events.length) {
          let chunk = seg.events.slice(seg.shipped, seg.shipped + SHIP_MAX);
          const size = chunk.length;
          if (this.#uncertain || this.#opts.alwaysCheckStored) chunk = await this.#notStored(chunk);
          if (chunk.length) await this.#appender.append(chunk);
          this.#uncertain = false;
          seg.shipped += size;
          this.#settled += size;
          this.stats.shipped += chunk.length;
        }
        await unlink(seg.file).catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        });
        this.#sealed.shift();
      }
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      this.#uncertain = true;
      this.stats.shipFailures++;
      this.#opts.log.error({ err, pending: this.pending }, 'audit outbox: shipping to PostgreSQL failed; retrying');
    }
  }

  /** The events of `chunk` whose ids are not in audit_event yet. */
  async #notStored(chunk: readonly AuditItem[]): Promise<AuditItem[]> {
    const ids = chunk.map((e) => e.id as string);
    const stored = new Set(
      (
        await this.#db.any(sql.unsafe`SELECT id::text AS id FROM audit_event WHERE id = ANY(${sql.array(ids, 'uuid')})`)
      ).map((r) => (r as { id: string }).id),
    );
    this.stats.skippedDuplicates += stored.size;
    return chunk.filter((e) => !stored.has(e.id as string));
  }
}

/** Directories held by outboxes of this process (a second app in the same process must not share one either). */
const held = new Set<string>();

/** Takes `dir/LOCK` for this process, or throws {@link OutboxLockedError} if a live process holds it. */
async function takeLock(dir: string): Promise<void> {
  if (held.has(resolve(dir))) throw new OutboxLockedError(dir, process.pid);
  const lock = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      held.add(resolve(dir));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    // A stale lock (its process is gone, or it is our own pid reused after a restart in a container) is taken over.
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) throw new OutboxLockedError(dir, pid);
    await unlink(lock).catch(() => undefined);
  }
  throw new OutboxLockedError(dir, 0);
}

async function releaseLock(dir: string): Promise<void> {
  await unlink(join(dir, 'LOCK')).catch(() => undefined);
  held.delete(resolve(dir));
}
