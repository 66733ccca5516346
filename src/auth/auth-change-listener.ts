/**
 * Cross-process invalidation of the caller cache: a dedicated PostgreSQL connection LISTENs on
 * {@link AUTH_CHANGED_CHANNEL}; database triggers NOTIFY it on every change to revoked tokens, patient grants,
 * users, OAuth clients, signing keys and orders (imaging assignments), whoever the writer is
 * (https://www.postgresql.org/docs/15/sql-notify.html). Notifications are delivered at commit.
 *
 * Fail safe: the cache is enabled only while the LISTEN is active; an error, a closed connection or a failed heartbeat
 * disables it until a new connection LISTENs again (then it starts from empty). The connection handling is the shared
 * {@link NotifyListener}.
 */
import { type ListenerLog, NotifyListener } from '../db/notify-listener.ts';

export type { ListenerLog };

export const AUTH_CHANGED_CHANNEL = 'ehr_auth_changed';

export interface AuthChangeHandlers {
  /** Something a caller's resolution reads has changed. */
  onChange(): void;
  /** LISTEN is active: caching may start (from empty). */
  onUp(): void;
  /** The channel is lost: stop caching now. */
  onDown(): void;
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

export class AuthChangeListener extends NotifyListener {
  constructor(opts: AuthChangeListenerOptions) {
    const { handlers, ...rest } = opts;
    super({
      ...rest,
      channels: [AUTH_CHANGED_CHANNEL],
      name: 'ehr-auth-listener',
      subject: 'caller cache',
      handlers: { onNotify: () => handlers.onChange(), onUp: () => handlers.onUp(), onDown: () => handlers.onDown() },
    });
  }
}
