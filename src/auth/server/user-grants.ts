/**
 * A user's own view of the grants the built-in authorization server gave to apps on their behalf, and their revocation:
 * the data behind SMART App Launch 2.x `management_endpoint` ("URL where an end-user can view which applications
 * currently have access to data and can make adjustments to these access rights",
 * https://hl7.org/fhir/smart-app-launch/conformance.html).
 *
 * A grant is one authorization (one redeemed authorization code) and everything issued from it, i.e. one token family
 * (grant-store.ts). It is active while it still has a live refresh token or a live, non-revoked access token.
 * Revoking it reuses {@link revokeFamily}, the same function that ends a family after a replayed code or refresh
 * token and on RFC 7009 revocation.
 */
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { revokeFamily } from './grant-store.ts';

export interface UserGrant {
  readonly grantId: string;
  readonly clientId: string;
  readonly clientName: string;
  readonly scope: string;
  /** The patient launch context, when the grant has one. */
  readonly patient: string | null;
  readonly createdAt: string;
  readonly lastUsedAt: string;
  /** When the last live token of the grant expires (refresh token, else access token). */
  readonly expiresAt: string;
  /** Whether the token of the request belongs to this grant (revoking it ends the caller's own session). */
  readonly current: boolean;
}

const ISO = (col: ReturnType<typeof sql.fragment>) =>
  sql.fragment`to_char((${col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The active grants (families) of `userId` and their live expiry, as a reusable FROM/WHERE fragment. */
function activeGrants(userId: string, familyId?: string) {
  return sql.fragment`
    FROM authorization_codes c
    JOIN oauth_clients oc ON oc.client_id = c.client_id
    LEFT JOIN LATERAL (
      SELECT scope, patient_id, expires_at FROM refresh_tokens r
      WHERE r.family_id = c.family_id AND r.used_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > now()
      ORDER BY r.created_at DESC LIMIT 1) live_refresh ON true
    LEFT JOIN LATERAL (
      SELECT max(a.expires_at) AS expires_at FROM issued_access_tokens a
      WHERE a.family_id = c.family_id AND a.expires_at > now()
        AND NOT EXISTS (SELECT 1 FROM revoked_tokens v WHERE v.jti = a.jti)) live_access ON true
    LEFT JOIN LATERAL (
      SELECT max(r.used_at) AS used_at FROM refresh_tokens r WHERE r.family_id = c.family_id) refreshed ON true
    WHERE c.user_id = ${userId}::uuid AND c.used_at IS NOT NULL
      ${familyId === undefined ? sql.fragment`` : sql.fragment`AND c.family_id = ${familyId}::uuid`}
      AND (live_refresh.expires_at IS NOT NULL OR live_access.expires_at IS NOT NULL)`;
}

/** The user's active grants, most recently used first; `currentJti`: the jti of the asking token. */
export async function listUserGrants(
  db: DatabasePool,
  userId: string,
  currentJti: string | undefined,
): Promise<readonly UserGrant[]> {
  const rows = await db.any(sql.unsafe`
    SELECT c.family_id::text AS "grantId", c.client_id AS "clientId", oc.name AS "clientName",
           coalesce(live_refresh.scope, c.scope) AS scope,
           coalesce(live_refresh.patient_id, c.patient_id) AS patient,
           ${ISO(sql.fragment`c.created_at`)} AS "createdAt",
           ${ISO(sql.fragment`greatest(c.used_at, refreshed.used_at)`)} AS "lastUsedAt",
           ${ISO(sql.fragment`greatest(live_refresh.expires_at, live_access.expires_at)`)} AS "expiresAt",
           EXISTS (SELECT 1 FROM issued_access_tokens t
                   WHERE t.jti = ${currentJti ?? ''} AND t.family_id = c.family_id) AS current
    ${activeGrants(userId)}
    ORDER BY greatest(c.used_at, refreshed.used_at) DESC, c.family_id`);
  return rows as unknown as readonly UserGrant[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Revokes one active grant of `userId` (its refresh tokens and access tokens) in one transaction. False, and nothing
 * changes, when the user has no such active grant (another user's grant, an unknown or already ended one).
 */
export async function revokeUserGrant(db: DatabasePool, userId: string, grantId: string): Promise<boolean> {
  if (!UUID.test(grantId)) return false;
  return db.transaction(async (tx: CommonQueryMethods) => {
    const found = await tx.maybeOneFirst(sql.unsafe`SELECT c.family_id::text ${activeGrants(userId, grantId)}`);
    if (typeof found !== 'string') return false;
    await revokeFamily(tx, found);
    return true;
  });
}

/**
 * The built-in server's user behind an access token, or undefined: the token's jti was recorded when the built-in
 * server issued it to that user (grant-store.ts `recordAccessToken`), and the user is active. Tokens of backend
 * clients, external issuers and development tokens have no such record.
 */
export async function builtinTokenUser(
  db: DatabasePool,
  jti: string | undefined,
  sub: string,
): Promise<string | undefined> {
  if (jti === undefined || !UUID.test(sub)) return undefined;
  const id = await db.maybeOneFirst(sql.unsafe`
    SELECT u.id::text FROM issued_access_tokens a JOIN users u ON u.id = a.user_id
    WHERE a.jti = ${jti} AND a.user_id = ${sub}::uuid AND u.active`);
  return typeof id === 'string' ? id : undefined;
}
