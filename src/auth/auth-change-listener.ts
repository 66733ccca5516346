/**
 * Cross-process invalidation of the caller cache: a dedicated PostgreSQL connection LISTENs on
 * {@link AUTH_CHANGED_CHANNEL}; triggers of migration 007 NOTIFY it on every change to revoked tokens, patient grants,
 * users, OAuth clients, signing keys and orders (imaging assignments), whoever the writer is
 * (https://www.postgresql.org/docs/15/sql-notify.html). Notifications are delivered at commit.
 *
 * Fail safe: the cache is enabled only while the LISTEN is active; an error, a closed connection or a failed heartbeat
 * disables it until a new connection LISTENs again (then it starts from empty).
 */
import pg from 'pg';

export const AUTH_CHANGED_CHANNEL = 'ehr_auth_changed';

export interface AuthChangeHandlers {
  /** Something a caller's resolution reads has changed. */
  onChange(): void;
  /** LISTEN is active: caching may start (from empty). */
  onUp(): void;
  /** The channel is lost: stop caching now. */
  onDown(): void;
}

export interface ListenerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface AuthChangeListenerOptions {
  readonly databaseUrl: string;
  readonly handlers: AuthChangeHandlers;
  readonly log: ListenerLog;
  /** Delay before reconnecting, ms. */
  readonly retryMs?: number;
  /** Interval of the liveness query on the LISTEN connection, ms. */
  readonly heartbeatMs?: number;
}

export class AuthChangeListener {
  readonly #opts: AuthChangeListenerOptions;
  #client: pg.Client | undefined;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(opts: AuthChangeListenerOptions) {
    this.#opts = opts;
  }

  /** Connects and LISTENs once; on failure keeps retrying in the background (the cache stays off meanwhile). */
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
    const heartbeatMs = this.#opts.heartbeatMs ?? 5000;
    const client = new pg.Client({
      connectionString: this.#opts.databaseUrl,
      keepAlive: true,
      query_timeout: heartbeatMs,
      application_name: 'ehr-auth-listener',
    });
    client.on('notification', (msg) => {
      if (client === this.#client && msg.channel === AUTH_CHANGED_CHANNEL) this.#opts.handlers.onChange();
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${AUTH_CHANGED_CHANNEL}`);
    } catch (err) {
      this.#opts.log.warn({ err }, 'auth change listener: cannot LISTEN, caller cache off');
      await client.end().catch(() => undefined);
      this.#schedule();
      return;
    }
    if (this.#stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#opts.handlers.onUp();
    this.#opts.log.info({ channel: AUTH_CHANGED_CHANNEL }, 'auth change listener: listening, caller cache on');
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
    if (!this.#stopped) this.#opts.log.warn({ err }, 'auth change listener: connection lost, caller cache off');
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
