/**
 * The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.5; RFC 7523; SMART App Launch 2.x and Backend
 * Services). Grants: authorization_code (PKCE S256), refresh_token (rotated), client_credentials (private_key_jwt).
 */
import type { FastifyInstance } from 'fastify';
import { parseScopes } from '../scopes.ts';
import { narrowScopes } from '../scopes.ts';
import { type ClientRecord, userById } from '../store.ts';
import { authenticateClient } from './client-auth.ts';
import type { ServerContext } from './context.ts';
import { OAuthError } from './errors.ts';
import { parseForm } from './form.ts';
import { consumeCode, createRefreshToken, type RefreshGrant, useRefreshToken } from './grant-store.ts';
import { verifyPkce } from './pkce.ts';
import { mintAccessToken, mintIdToken } from './tokens.ts';

type TokenResponse = Record<string, string | number | boolean>;

async function userTokens(ctx: ServerContext, client: ClientRecord, g: RefreshGrant, nonce: string | null) {
  const user = await userById(ctx.db, g.userId);
  if (!user?.active) throw new OAuthError('invalid_grant', 'the user is no longer active');
  const fhirUser = user.practitionerId ? `Practitioner/${user.practitionerId}` : undefined;
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
  if (scopes.offlineAccess || scopes.onlineAccess) {
    body['refresh_token'] = await createRefreshToken(ctx.db, g, ctx.config.authRefreshTokenTtlS);
  }
  return body;
}

async function authorizationCode(ctx: ServerContext, form: Record<string, string>): Promise<TokenResponse> {
  const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx));
  const code = form['code'];
  if (!code) throw new OAuthError('invalid_request', 'code is required');
  const used = await consumeCode(ctx.db, code);
  if (!used.ok) throw new OAuthError('invalid_grant', used.reason);
  const g = used.grant;
  if (g.clientId !== client.clientId) throw new OAuthError('invalid_grant', 'code was issued to another client');
  if (form['redirect_uri'] !== g.redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri does not match');
  if (!verifyPkce(form['code_verifier'], g.codeChallenge)) {
    throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
  }
  const grant: RefreshGrant = {
    familyId: g.familyId,
    clientId: g.clientId,
    userId: g.userId,
    scope: g.scope,
    patientId: g.patientId,
  };
  return userTokens(ctx, client, grant, g.nonce);
}

async function refreshToken(ctx: ServerContext, form: Record<string, string>): Promise<TokenResponse> {
  const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx));
  const token = form['refresh_token'];
  if (!token) throw new OAuthError('invalid_request', 'refresh_token is required');
  const used = await useRefreshToken(ctx.db, token);
  if (!used.ok) throw new OAuthError('invalid_grant', used.reason);
  const g = used.grant;
  if (g.clientId !== client.clientId)
    throw new OAuthError('invalid_grant', 'refresh token was issued to another client');
  let scope = g.scope;
  if (form['scope'] !== undefined) {
    // RFC 6749 §6: the new scope must not include any scope not originally granted.
    const narrowed = narrowScopes(form['scope'], g.scope);
    if (narrowed.length !== new Set(form['scope'].split(' ').filter(Boolean)).size) {
      throw new OAuthError('invalid_scope', 'requested scope exceeds the original grant');
    }
    scope = narrowed.join(' ');
  }
  return userTokens(ctx, client, { ...g, scope }, null);
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
