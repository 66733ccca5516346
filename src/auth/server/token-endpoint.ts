/**
 * The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.5; RFC 7523; SMART App Launch 2.x and Backend
 * Services). Grants: authorization_code (PKCE S256), refresh_token (rotated), client_credentials (private_key_jwt).
 */
import type { FastifyInstance } from 'fastify';
import type { CommonQueryMethods } from 'slonik';
import { patientClaimBounded, reaches, userReach } from '../patient-reach.ts';
import type { UserRecord } from '../patient-sets.ts';
import { fhirUserOf } from '../patient-user.ts';
import { narrowScopes, parseScopes } from '../scopes.ts';
import { type ClientRecord, userById } from '../store.ts';
import { authenticateClient } from './client-auth.ts';
import type { ServerContext } from './context.ts';
import { OAuthError } from './errors.ts';
import { parseForm } from './form.ts';
import {
  type CodeGrant,
  consumeCode,
  createRefreshToken,
  findCode,
  findRefreshToken,
  type RefreshGrant,
  recordAccessToken,
  revokeFamily,
  useRefreshToken,
} from './grant-store.ts';
import { verifyPkce } from './pkce.ts';
import { mintAccessToken, mintIdToken } from './tokens.ts';

type TokenResponse = Record<string, string | number | boolean>;

/**
 * The user behind a grant, if the grant still holds: the user is active and, for a patient context, still reaches
 * that patient (patient-reach.ts; the same bound the resource server applies to the access token). Otherwise
 * `invalid_grant` (RFC 6749 §5.2: the grant "is invalid, expired, revoked").
 */
async function grantUser(ctx: ServerContext, client: ClientRecord, g: RefreshGrant): Promise<UserRecord> {
  const user = await userById(ctx.db, g.userId);
  if (!user?.active) throw new OAuthError('invalid_grant', 'the user is no longer active');
  if (g.patientId && patientClaimBounded(user.roles, client.clientId)) {
    if (!reaches(await userReach(ctx.db, user), g.patientId)) {
      throw new OAuthError('invalid_grant', 'the user no longer has access to the launch patient');
    }
  }
  return user;
}

/** Tokens signed for a grant, not yet recorded: what a successful redemption or refresh answers. */
interface MintedTokens {
  readonly body: TokenResponse;
  readonly jti: string;
  readonly expiresIn: number;
  readonly grant: RefreshGrant;
  readonly withRefreshToken: boolean;
}

/** Signs the access token (and id_token) for a grant. No database writes: those come in {@link recordTokens}. */
async function mintTokens(
  ctx: ServerContext,
  client: ClientRecord,
  g: RefreshGrant,
  user: UserRecord,
  nonce: string | null,
): Promise<MintedTokens> {
  const fhirUser = fhirUserOf(user);
  const scopes = parseScopes(g.scope);
  const access = await mintAccessToken(ctx.mint, {
    sub: user.id,
    clientId: client.clientId,
    scope: g.scope,
    patient: g.patientId ?? undefined,
    fhirUser: scopes.fhirUser ? fhirUser : undefined,
  });
  const body: TokenResponse = {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: g.scope,
  };
  if (g.patientId) {
    body['patient'] = g.patientId;
    body['need_patient_banner'] = true;
  }
  if (scopes.openid) {
    body['id_token'] = await mintIdToken(ctx.mint, {
      sub: user.id,
      clientId: client.clientId,
      fhirUser: scopes.fhirUser ? fhirUser : undefined,
      nonce,
    });
  }
  const withRefreshToken = scopes.offlineAccess || scopes.onlineAccess;
  return { body, jti: access.jti, expiresIn: access.expiresIn, grant: g, withRefreshToken };
}

/** Records the access token under its grant (so that revoking the grant ends it) and creates the refresh token. */
async function recordTokens(ctx: ServerContext, tx: CommonQueryMethods, m: MintedTokens): Promise<TokenResponse> {
  const g = m.grant;
  await recordAccessToken(tx, {
    jti: m.jti,
    familyId: g.familyId,
    userId: g.userId,
    clientId: g.clientId,
    expiresInS: m.expiresIn,
  });
  if (!m.withRefreshToken) return m.body;
  return { ...m.body, refresh_token: await createRefreshToken(tx, g, ctx.config.authRefreshTokenTtlS) };
}

/** Why the redeemed code does not fit this request, or undefined (RFC 6749 §4.1.3, RFC 7636 §4.6). */
function codeMismatch(g: CodeGrant, client: ClientRecord, form: Record<string, string>): string | undefined {
  if (g.clientId !== client.clientId) return 'code was issued to another client';
  if (form['redirect_uri'] !== g.redirectUri) return 'redirect_uri does not match';
  if (!verifyPkce(form['code_verifier'], g.codeChallenge)) return 'code_verifier does not match the code_challenge';
  return undefined;
}

/** Checks a code found unused and signs its tokens; an {@link OAuthError} when it does not hold. */
async function redeem(
  ctx: ServerContext,
  client: ClientRecord,
  form: Record<string, string>,
  g: CodeGrant,
): Promise<MintedTokens | OAuthError> {
  const mismatch = codeMismatch(g, client, form);
  if (mismatch) return new OAuthError('invalid_grant', mismatch);
  const grant: RefreshGrant = {
    familyId: g.familyId,
    clientId: g.clientId,
    userId: g.userId,
    scope: g.scope,
    patientId: g.patientId,
  };
  try {
    return await mintTokens(ctx, client, grant, await grantUser(ctx, client, grant), g.nonce);
  } catch (err) {
    if (err instanceof OAuthError) return err;
    throw err;
  }
}

/**
 * Redeems a code. Checks and signing come first; using the code and recording the tokens issued from it are then one
 * transaction, so a replay of the code waits on the code's row until the first redemption has committed and the
 * revocation it triggers always finds what that redemption issued. A code is used up by every redemption, also one
 * that fails its checks.
 */
async function authorizationCode(ctx: ServerContext, form: Record<string, string>): Promise<TokenResponse> {
  const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx));
  const code = form['code'];
  if (!code) throw new OAuthError('invalid_request', 'code is required');
  const found = await findCode(ctx.db, code);
  const prepared = found?.usable ? await redeem(ctx, client, form, found.grant) : undefined;
  type Outcome = { ok: true; body: TokenResponse } | { ok: false; error: OAuthError; replayed?: boolean };
  const outcome = await ctx.db.transaction(async (tx): Promise<Outcome> => {
    const used = await consumeCode(tx, code);
    if (!used.ok) {
      const error = new OAuthError('invalid_grant', used.reason);
      return { ok: false, error, replayed: used.revokedFamily !== undefined };
    }
    if (prepared === undefined) return { ok: false, error: new OAuthError('invalid_grant', 'code could not be used') };
    if (prepared instanceof OAuthError) return { ok: false, error: prepared };
    return { ok: true, body: await recordTokens(ctx, tx, prepared) };
  });
  if (outcome.ok) return outcome.body;
  // The revocation committed with the transaction; other processes learn it by NOTIFY, this one now.
  if (outcome.replayed) ctx.invalidateCallers();
  throw outcome.error;
}

/** Revokes a replayed refresh token's grant (token theft detection) and answers `invalid_grant`. */
async function refreshReplayed(ctx: ServerContext, familyId: string): Promise<never> {
  await ctx.db.transaction((tx) => revokeFamily(tx, familyId));
  ctx.invalidateCallers();
  throw new OAuthError('invalid_grant', 'refresh token already used; its grant is revoked');
}

/**
 * RFC 6749 §6. Every check and the signing come before the token is used, and using it and recording the new tokens
 * are one transaction: a refresh token is consumed only by a request that succeeds (a failed client authentication, a
 * wrong scope or a lost patient leave it usable for a correct retry).
 */
async function refreshToken(ctx: ServerContext, form: Record<string, string>): Promise<TokenResponse> {
  const token = form['refresh_token'];
  const found = token ? await findRefreshToken(ctx.db, token) : undefined;
  const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx), found?.grant.clientId);
  if (!token) throw new OAuthError('invalid_request', 'refresh_token is required');
  if (!found) throw new OAuthError('invalid_grant', 'unknown refresh token');
  const g = found.grant;
  if (g.clientId !== client.clientId) {
    throw new OAuthError('invalid_grant', 'refresh token was issued to another client');
  }
  if (found.state === 'used') return refreshReplayed(ctx, g.familyId);
  if (found.state === 'ended') throw new OAuthError('invalid_grant', 'refresh token revoked or expired');
  let scope = g.scope;
  if (form['scope'] !== undefined) {
    // RFC 6749 §6: the new scope must not include any scope not originally granted.
    const narrowed = narrowScopes(form['scope'], g.scope);
    if (narrowed.length !== new Set(form['scope'].split(' ').filter(Boolean)).size) {
      throw new OAuthError('invalid_scope', 'requested scope exceeds the original grant');
    }
    scope = narrowed.join(' ');
  }
  const minted = await mintTokens(ctx, client, { ...g, scope }, await grantUser(ctx, client, g), null);
  const issued = await ctx.db.transaction(async (tx) => {
    const used = await useRefreshToken(tx, token);
    if (!used.ok) return used;
    return { ok: true as const, body: await recordTokens(ctx, tx, minted) };
  });
  if (issued.ok) return issued.body;
  // Another request used the token between the checks and the transaction: a replay like any other.
  if (issued.reusedFamily !== undefined) return refreshReplayed(ctx, issued.reusedFamily);
  throw new OAuthError('invalid_grant', issued.reason);
}

async function clientCredentials(ctx: ServerContext, form: Record<string, string>): Promise<TokenResponse> {
  if (form['client_assertion'] === undefined) {
    throw new OAuthError('invalid_client', 'client_credentials requires a private_key_jwt client assertion');
  }
  const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx));
  if (client.kind !== 'backend') throw new OAuthError('unauthorized_client', 'client may not use client_credentials');
  const requested = form['scope'];
  if (!requested) throw new OAuthError('invalid_scope', 'scope is required');
  const granted = narrowScopes(requested, client.scopeCeiling).filter((s) => s.startsWith('system/'));
  if (granted.length === 0) throw new OAuthError('invalid_scope', 'no requested scope can be granted');
  const scope = granted.join(' ');
  const access = await mintAccessToken(ctx.mint, { sub: client.clientId, clientId: client.clientId, scope });
  return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope };
}

export function clientAuthOptions(ctx: ServerContext) {
  return { audiences: [ctx.urls.token, ctx.urls.issuer], clockToleranceS: ctx.config.authClockToleranceS };
}

export async function tokenRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  app.post('/auth/token', async (req, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    const form = parseForm(String(req.body ?? ''));
    const grantType = form['grant_type'];
    let body: TokenResponse;
    if (grantType === 'authorization_code') body = await authorizationCode(ctx, form);
    else if (grantType === 'refresh_token') body = await refreshToken(ctx, form);
    else if (grantType === 'client_credentials') body = await clientCredentials(ctx, form);
    else if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required');
    else throw new OAuthError('unsupported_grant_type', `grant_type ${grantType} is not supported`);
    req.log.info({ auth: { endpoint: 'token', grantType, scope: body['scope'] } }, 'token issued');
    return body;
  });
}
