/**
 * A dedicated PostgreSQL connection that LISTENs on a few channels and hands their notifications to in-process caches
 * (https://www.postgresql.org/docs/15/sql-notify.html): the cross-process invalidation signal of every facade replica's
 * caches. Triggers in the migrations NOTIFY in the writer's transaction, so notifications arrive after commit, whoever
 * the writer is.
 *
 * Fail safe: a cache fed by a listener must serve only between `onUp` and `onDown`. `onUp` comes once every channel
 * is LISTENed on (nothing sent before can be missed from then on); an error, a closed connection or a failed heartbeat
 * calls `onDown` at once and reconnects after `retryMs`; `onUp` then comes again (caches start from empty).
 *
 * Used by the caller cache (src/auth/auth-change-listener.ts) and the DICOMweb caches
 * (src/dicomweb/cache/study-change-listener.ts), each with its own connection (its own `application_name`).
 */
import pg from 'pg';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export interface NotifyHandlers {
  /** A notification on one of the channels (payload '' when the sender gave none). */
  onNotify(channel: string, payload: string): void;
  /** Every channel is LISTENed on: caching may start (from empty). */
  onUp(): void;
  /** The connection is lost (or the listener stopped): stop caching now. */
  onDown(): void;
}

export interface ListenerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface NotifyListenerOptions {
  readonly databaseUrl: string;
  /** Channel names (lower-case SQL identifiers). */
  readonly channels: readonly string[];
  readonly handlers: NotifyHandlers;
  readonly log: ListenerLog;
  /** `application_name` of the connection (pg_stat_activity), also the name in log lines. */
  readonly name: string;
  /** What the listener keeps correct, for log lines ("caller cache"). */
  readonly subject: string;
  /** Delay before reconnecting, ms. */
  readonly retryMs?: number;
  /** Interval of the liveness query on the LISTEN connection, ms. */
  readonly heartbeatMs?: number;
}

/** A channel name that is not a plain lower-case identifier (LISTEN takes no parameters). */
export class InvalidChannelError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DB_INVALID_CHANNEL';
  override name = 'InvalidChannelError';
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

export class NotifyListener {
  readonly #opts: NotifyListenerOptions;
  #client: pg.Client | undefined;
  #backendPid: number | undefined;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(opts: NotifyListenerOptions) {
    for (const c of opts.channels) {
      if (!CHANNEL.test(c)) throw new InvalidChannelError(`not a channel name: ${JSON.stringify(c)}`);
    }
    this.#opts = opts;
  }

  /** Is LISTEN active now? */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** The server process id of the LISTEN connection while listening (diagnostics, tests). */
  get backendPid(): number | undefined {
    return this.#client ? this.#backendPid : undefined;
  }

  /** Connects and LISTENs once; on failure keeps retrying in the background (caches stay off meanwhile). */
  async start(): Promise<void> {
    await this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#heartbeat);
    const c = this.#client;
    this.#client = undefined;
    this.#opts.handlers.onDown();
    await c?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const { name, subject, log, handlers } = this.#opts;
    const heartbeatMs = this.#opts.heartbeatMs ?? 5000;
    const client = new pg.Client({
      connectionString: this.#opts.databaseUrl,
      keepAlive: true,
      query_timeout: heartbeatMs,
      application_name: name,
    });
    const channels = new Set(this.#opts.channels);
    client.on('notification', (msg) => {
      if (client !== this.#client || !channels.has(msg.channel)) return;
      try {
        handlers.onNotify(msg.channel, msg.payload ?? '');
      } catch (err) {
        // A handler that cannot apply a change must not leave its cache serving: treat it as a lost connection.
        log.error({ err, channel: msg.channel }, `${name}: a notification could not be applied`);
        this.#lost(client, err);
      }
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, undefined));
    try {
      await client.connect();
      for (const c of channels) await client.query(`LISTEN ${client.escapeIdentifier(c)}`);
      const row = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number };
      this.#backendPid = row.pid;
    } catch (err) {
      log.warn({ err }, `${name}: cannot LISTEN, ${subject} off`);
      await client.end().catch(() => undefined);
      this.#schedule();
      return;
    }
    if (this.#stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    handlers.onUp();
    log.info({ channels: [...channels], pid: this.#backendPid }, `${name}: listening, ${subject} on`);
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      client.query('SELECT 1').catch((err: unknown) => this.#lost(client, err));
    }, heartbeatMs);
    this.#heartbeat.unref();
  }

  #lost(client: pg.Client, err: unknown): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    clearInterval(this.#heartbeat);
    this.#opts.handlers.onDown();
    if (!this.#stopped) this.#opts.log.warn({ err }, `${this.#opts.name}: connection lost, ${this.#opts.subject} off`);
    client.end().catch(() => undefined);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#connect(), this.#opts.retryMs ?? 1000);
    this.#retry.unref();
  }
}
