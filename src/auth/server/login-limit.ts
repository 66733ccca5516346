/**
 * Brute-force protection of the login form: failed attempts are counted per user name and per client IP in a fixed
 * window (`login_attempts`); once either count reaches its limit, further attempts are refused without checking the
 * password until the window ends. A successful login clears the user's counter.
 */
import { type DatabasePool, sql } from 'slonik';

export interface LoginLimits {
  readonly maxPerUser: number;
  readonly maxPerIp: number;
  readonly windowS: number;
}

const userKey = (username: string) => `user:${username.toLowerCase()}`;
const ipKey = (ip: string) => `ip:${ip}`;

export async function loginBlocked(db: DatabasePool, username: string, ip: string, l: LoginLimits): Promise<boolean> {
  const rows = (await db.any(sql.unsafe`
    SELECT key, failures FROM login_attempts
    WHERE key = ANY(${sql.array([userKey(username), ipKey(ip)], 'text')})
      AND window_start > now() - make_interval(secs => ${l.windowS})`)) as readonly { key: string; failures: number }[];
  return rows.some((r) => r.failures >= (r.key.startsWith('user:') ? l.maxPerUser : l.maxPerIp));
}

export async function recordLoginFailure(
  db: DatabasePool,
  username: string,
  ip: string,
  l: LoginLimits,
): Promise<void> {
  for (const key of [userKey(username), ipKey(ip)]) {
    await db.query(sql.unsafe`
      INSERT INTO login_attempts (key, failures, window_start) VALUES (${key}, 1, now())
      ON CONFLICT (key) DO UPDATE SET
        failures = CASE WHEN login_attempts.window_start > now() - make_interval(secs => ${l.windowS})
                        THEN login_attempts.failures + 1 ELSE 1 END,
        window_start = CASE WHEN login_attempts.window_start > now() - make_interval(secs => ${l.windowS})
                            THEN login_attempts.window_start ELSE now() END`);
  }
}

export async function recordLoginSuccess(db: DatabasePool, username: string): Promise<void> {
  await db.query(sql.unsafe`DELETE FROM login_attempts WHERE key = ${userKey(username)}`);
}
