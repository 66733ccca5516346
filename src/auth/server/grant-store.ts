/**
 * Authorization codes and refresh tokens in the database, by hash. Codes are single-use (RFC 6749 §4.1.2: a reused
 * code revokes what it issued); refresh tokens rotate on every use and a reused one revokes its whole family. Access
 * tokens issued from a grant are recorded by jti (`issued_access_tokens`) so that revoking the grant's family also puts them on
 * the `revoked_tokens` denylist, which every facade process checks (RFC 7009 §2: revoking a grant MAY, and here does,
 * end its access tokens).
 */
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { hashToken, newOpaqueToken } from './tokens.ts';

export interface CodeGrant {
  readonly clientId: string;
  readonly userId: string;
  readonly redirectUri: string;
  readonly scope: string;
  readonly patientId: string | null;
  readonly nonce: string | null;
  readonly codeChallenge: string;
  readonly familyId: string;
}

export async function createCode(db: DatabasePool, g: Omit<CodeGrant, 'familyId'>, ttlS: number): Promise<string> {
  const code = newOpaqueToken();
  await db.query(sql.unsafe`
    INSERT INTO authorization_codes
      (code_hash, client_id, user_id, redirect_uri, scope, patient_id, nonce, code_challenge, expires_at)
    VALUES (${hashToken(code)}, ${g.clientId}, ${g.userId}, ${g.redirectUri}, ${g.scope}, ${g.patientId},
            ${g.nonce}, ${g.codeChallenge}, now() + make_interval(secs => ${ttlS}))`);
  return code;
}

export type CodeResult =
  | { ok: true; grant: CodeGrant }
  /** `revokedFamily`: the code was replayed and the grant it started (refresh and access tokens) is revoked. */
  | { ok: false; reason: string; revokedFamily?: string };

/** Looks a code up without using it; `usable`: not used yet and not expired. */
export async function findCode(
  db: DatabasePool,
  code: string,
): Promise<{ grant: CodeGrant; usable: boolean } | undefined> {
  const row = (await db.maybeOne(sql.unsafe`
    SELECT client_id, user_id, redirect_uri, scope, patient_id, nonce, code_challenge, family_id,
           used_at IS NULL AND expires_at > now() AS usable
    FROM authorization_codes WHERE code_hash = ${hashToken(code)}`)) as {
    client_id: string;
    user_id: string;
    redirect_uri: string;
    scope: string;
    patient_id: string | null;
    nonce: string | null;
    code_challenge: string;
    family_id: string;
    usable: boolean;
  } | null;
  if (!row) return undefined;
  return {
    usable: row.usable,
    grant: {
      clientId: row.client_id,
      userId: row.user_id,
      redirectUri: row.redirect_uri,
      scope: row.scope,
      patientId: row.patient_id,
      nonce: row.nonce,
      codeChallenge: row.code_challenge,
      familyId: row.family_id,
    },
  };
}

/** Consumes a code atomically. A second use revokes the refresh and access tokens issued from the first. */
export async function consumeCode(db: CommonQueryMethods, code: string): Promise<CodeResult> {
  const hash = hashToken(code);
  const row = (await db.maybeOne(sql.unsafe`
    UPDATE authorization_codes SET used_at = now()
    WHERE code_hash = ${hash} AND used_at IS NULL
    RETURNING client_id, user_id, redirect_uri, scope, patient_id, nonce, code_challenge, family_id,
              expires_at > now() AS fresh`)) as {
    client_id: string;
    user_id: string;
    redirect_uri: string;
    scope: string;
    patient_id: string | null;
    nonce: string | null;
    code_challenge: string;
    family_id: string;
    fresh: boolean;
  } | null;
  if (!row) {
    const used = (await db.maybeOne(
      sql.unsafe`SELECT family_id FROM authorization_codes WHERE code_hash = ${hash}`,
    )) as { family_id: string } | null;
    if (used) {
      await revokeFamily(db, used.family_id);
      return {
        ok: false,
        reason: 'authorization code already used; tokens issued from it are revoked',
        revokedFamily: used.family_id,
      };
    }
    return { ok: false, reason: 'unknown authorization code' };
  }
  if (!row.fresh) return { ok: false, reason: 'authorization code expired' };
  return {
    ok: true,
    grant: {
      clientId: row.client_id,
      userId: row.user_id,
      redirectUri: row.redirect_uri,
      scope: row.scope,
      patientId: row.patient_id,
      nonce: row.nonce,
      codeChallenge: row.code_challenge,
      familyId: row.family_id,
    },
  };
}

export interface RefreshGrant {
  readonly familyId: string;
  readonly clientId: string;
  readonly userId: string;
  readonly scope: string;
  readonly patientId: string | null;
}

export async function createRefreshToken(db: CommonQueryMethods, g: RefreshGrant, ttlS: number): Promise<string> {
  const token = newOpaqueToken();
  await db.query(sql.unsafe`
    INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, patient_id, expires_at)
    VALUES (${hashToken(token)}, ${g.familyId}, ${g.clientId}, ${g.userId}, ${g.scope}, ${g.patientId},
            now() + make_interval(secs => ${ttlS}))`);
  return token;
}

/** Records an access token issued from a grant (family) to a user, until it expires. Purges expired records. */
export async function recordAccessToken(
  db: CommonQueryMethods,
  t: { jti: string; familyId: string | null; userId: string | null; clientId: string; expiresInS: number },
): Promise<void> {
  await db.query(sql.unsafe`DELETE FROM issued_access_tokens WHERE expires_at < now()`);
  await db.query(sql.unsafe`
    INSERT INTO issued_access_tokens (jti, family_id, user_id, client_id, expires_at)
    VALUES (${t.jti}, ${t.familyId}, ${t.userId}, ${t.clientId}, now() + make_interval(secs => ${t.expiresInS}))`);
}

/**
 * Puts the still-live recorded access tokens that match `where` on the denylist, and purges denylist rows of tokens
 * that expired more than 10 minutes ago (the resource server accepts `exp` with a clock tolerance of at most 5
 * minutes; a purged jti no longer verifies). The denylist's NOTIFY trigger tells every facade process.
 */
async function denylistIssued(db: CommonQueryMethods, where: ReturnType<typeof sql.fragment>): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO revoked_tokens (jti, expires_at)
    SELECT jti, expires_at FROM issued_access_tokens WHERE ${where} AND expires_at > now() - interval '10 minutes'
    ON CONFLICT (jti) DO NOTHING`);
  await db.query(sql.unsafe`DELETE FROM revoked_tokens WHERE expires_at < now() - interval '10 minutes'`);
}

/** Ends a grant: its refresh tokens and the access tokens issued from it (call it in a transaction). */
export async function revokeFamily(db: CommonQueryMethods, familyId: string): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = ${familyId} AND revoked_at IS NULL`);
  await denylistIssued(db, sql.fragment`family_id = ${familyId}`);
}

/** Ends every grant of a user (deactivation): all refresh tokens and all recorded access tokens. */
export async function revokeUserTokens(db: CommonQueryMethods, userId: string): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = ${userId} AND revoked_at IS NULL`);
  await denylistIssued(db, sql.fragment`user_id = ${userId}`);
}

export interface RefreshState {
  readonly state: 'live' | 'used' | 'ended';
  readonly grant: RefreshGrant;
}

/** Looks a refresh token up without using it: live, already used (a replay), or revoked/expired. */
export async function findRefreshToken(db: DatabasePool, token: string): Promise<RefreshState | undefined> {
  const row = (await db.maybeOne(sql.unsafe`
    SELECT family_id, client_id, user_id, scope, patient_id, used_at IS NOT NULL AS used,
           revoked_at IS NULL AND expires_at > now() AS live
    FROM refresh_tokens WHERE token_hash = ${hashToken(token)}`)) as {
    family_id: string;
    client_id: string;
    user_id: string;
    scope: string;
    patient_id: string | null;
    used: boolean;
    live: boolean;
  } | null;
  if (!row) return undefined;
  const grant: RefreshGrant = {
    familyId: row.family_id,
    clientId: row.client_id,
    userId: row.user_id,
    scope: row.scope,
    patientId: row.patient_id,
  };
  return { state: row.used ? 'used' : row.live ? 'live' : 'ended', grant };
}

export type RefreshResult =
  | { ok: true; grant: RefreshGrant }
  /** `reusedFamily`: the token was used before (a replay); the caller revokes that family. */
  | { ok: false; reason: string; reusedFamily?: string };

/**
 * Uses a refresh token once (rotation), inside the caller's transaction so that a failure after it un-uses the token.
 * A token used before is reported with its family, which the caller revokes (token theft detection) outside the
 * transaction.
 */
export async function useRefreshToken(db: CommonQueryMethods, token: string): Promise<RefreshResult> {
  const hash = hashToken(token);
  const row = (await db.maybeOne(sql.unsafe`
    UPDATE refresh_tokens SET used_at = now()
    WHERE token_hash = ${hash} AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
    RETURNING family_id, client_id, user_id, scope, patient_id`)) as {
    family_id: string;
    client_id: string;
    user_id: string;
    scope: string;
    patient_id: string | null;
  } | null;
  if (!row) {
    const seen = (await db.maybeOne(sql.unsafe`
      SELECT family_id, used_at IS NOT NULL AS used FROM refresh_tokens WHERE token_hash = ${hash}`)) as {
      family_id: string;
      used: boolean;
    } | null;
    if (seen?.used) return { ok: false, reason: 'refresh token already used', reusedFamily: seen.family_id };
    return { ok: false, reason: seen ? 'refresh token used, revoked or expired' : 'unknown refresh token' };
  }
  return {
    ok: true,
    grant: {
      familyId: row.family_id,
      clientId: row.client_id,
      userId: row.user_id,
      scope: row.scope,
      patientId: row.patient_id,
    },
  };
}

/** The live refresh token's grant, without using it (introspection, revocation). */
export async function peekRefreshToken(
  db: DatabasePool,
  token: string,
): Promise<(RefreshGrant & { expiresAt: number }) | undefined> {
  const row = (await db.maybeOne(sql.unsafe`
    SELECT family_id, client_id, user_id, scope, patient_id, extract(epoch FROM expires_at)::float8 AS exp
    FROM refresh_tokens
    WHERE token_hash = ${hashToken(token)} AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()`)) as {
    family_id: string;
    client_id: string;
    user_id: string;
    scope: string;
    patient_id: string | null;
    exp: number;
  } | null;
  if (!row) return undefined;
  return {
    familyId: row.family_id,
    clientId: row.client_id,
    userId: row.user_id,
    scope: row.scope,
    patientId: row.patient_id,
    expiresAt: Math.floor(Number(row.exp)),
  };
}
