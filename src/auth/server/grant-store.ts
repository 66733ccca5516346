/**
 * Authorization codes and refresh tokens in the database, by hash. Codes are single-use (RFC 6749 §4.1.2: a reused
 * code revokes what it issued); refresh tokens rotate on every use and a reused one revokes its whole family.
 */
import { type DatabasePool, sql } from 'slonik';
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

export type CodeResult = { ok: true; grant: CodeGrant } | { ok: false; reason: string };

/** Consumes a code atomically. A second use revokes the refresh tokens issued from the first. */
export async function consumeCode(db: DatabasePool, code: string): Promise<CodeResult> {
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
      return { ok: false, reason: 'authorization code already used; tokens issued from it are revoked' };
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

export async function createRefreshToken(db: DatabasePool, g: RefreshGrant, ttlS: number): Promise<string> {
  const token = newOpaqueToken();
  await db.query(sql.unsafe`
    INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, patient_id, expires_at)
    VALUES (${hashToken(token)}, ${g.familyId}, ${g.clientId}, ${g.userId}, ${g.scope}, ${g.patientId},
            now() + make_interval(secs => ${ttlS}))`);
  return token;
}

export async function revokeFamily(db: DatabasePool, familyId: string): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = ${familyId} AND revoked_at IS NULL`);
}

export type RefreshResult = { ok: true; grant: RefreshGrant } | { ok: false; reason: string };

/** Uses a refresh token once (rotation). Reuse of a used token revokes its family (token theft detection). */
export async function useRefreshToken(db: DatabasePool, token: string): Promise<RefreshResult> {
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
    if (seen?.used) await revokeFamily(db, seen.family_id);
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
