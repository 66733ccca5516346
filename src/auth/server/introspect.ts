/**
 * Token introspection (RFC 7662) and revocation (RFC 7009).
 * - Introspection is for resource servers: the caller presents its own bearer token and must be an admin user or a
 *   backend client; a backend client learns only about tokens issued to itself. Anything not active is `{active:false}`.
 * - Revocation: the client authenticates as at the token endpoint and may revoke only its own tokens; an access token is
 *   added to the revoked-jti list until it expires, a refresh token revokes its whole family. Unknown or invalid tokens
 *   get 200 (RFC 7009 §2.2).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sql } from 'slonik';
import type { Access } from '../access.ts';
import { resolveAccess } from '../resolve-caller.ts';
import { type TrustedIssuer, verifyAccessToken } from '../verify-token.ts';
import { authenticateClient } from './client-auth.ts';
import type { ServerContext } from './context.ts';
import { OAuthError } from './errors.ts';
import { parseForm } from './form.ts';
import { peekRefreshToken, revokeFamily } from './grant-store.ts';
import { clientAuthOptions } from './token-endpoint.ts';

export interface IntrospectOptions {
  ctx: ServerContext;
  /** Authenticates the calling resource server's bearer token (the resource server's own check). */
  authenticate: (req: FastifyRequest) => Promise<Access>;
}

async function describeToken(
  ctx: ServerContext,
  builtin: TrustedIssuer,
  token: string,
): Promise<Record<string, unknown> | undefined> {
  if (token.includes('.')) {
    try {
      const verified = await verifyAccessToken(token, new Map([[builtin.issuer, builtin]]), 0);
      // Active exactly when the resource server would accept it (revocation, user, patient context).
      await resolveAccess(ctx.db, verified);
      return { ...verified.claims, active: true, token_type: 'Bearer' };
    } catch {
      return undefined;
    }
  }
  const r = await peekRefreshToken(ctx.db, token);
  if (!r) return undefined;
  return {
    active: true,
    token_type: 'refresh_token',
    client_id: r.clientId,
    sub: r.userId,
    scope: r.scope,
    exp: r.expiresAt,
    iss: ctx.urls.issuer,
    ...(r.patientId ? { patient: r.patientId } : {}),
  };
}

export async function introspectionRoutes(app: FastifyInstance, opts: IntrospectOptions): Promise<void> {
  const { ctx } = opts;
  const builtin: TrustedIssuer = {
    issuer: ctx.urls.issuer,
    audience: ctx.urls.fhirBase,
    getKey: ctx.keys.getKey,
    builtin: true,
  };

  app.post('/auth/introspect', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const caller = await opts.authenticate(req);
    const isAdmin = caller.kind === 'user' && caller.agent.roles.includes('admin');
    if (!isAdmin && caller.kind !== 'system') {
      throw new OAuthError('insufficient_scope', 'introspection needs an admin user or a backend client', 403);
    }
    const form = parseForm(String(req.body ?? ''));
    if (!form['token']) throw new OAuthError('invalid_request', 'token is required');
    const d = await describeToken(ctx, builtin, form['token']);
    const active = d !== undefined && (isAdmin || d.client_id === caller.agent.clientId);
    req.log.info({ auth: { endpoint: 'introspect', by: caller.agent.who, active } }, 'token introspected');
    return active ? d : { active: false };
  });

  app.post('/auth/revoke', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const form = parseForm(String(req.body ?? ''));
    const client = await authenticateClient(ctx.db, form, clientAuthOptions(ctx));
    const token = form['token'];
    if (!token) throw new OAuthError('invalid_request', 'token is required');
    if (token.includes('.')) {
      try {
        const { claims } = await verifyAccessToken(token, new Map([[builtin.issuer, builtin]]), 0);
        if (claims['client_id'] !== client.clientId) {
          throw new OAuthError('unauthorized_client', 'token was issued to another client');
        }
        await ctx.db.query(sql.unsafe`
          INSERT INTO revoked_tokens (jti, expires_at) VALUES (${String(claims.jti)}, to_timestamp(${Number(claims.exp)}))
          ON CONFLICT DO NOTHING`);
        // The denylist's NOTIFY trigger tells every process; this one must not wait for the notification.
        app.authCallerCache.clear();
        req.log.info(
          { auth: { endpoint: 'revoke', client: client.clientId, jti: claims.jti } },
          'access token revoked',
        );
      } catch (err) {
        if (err instanceof OAuthError) throw err;
      }
    } else {
      const r = await peekRefreshToken(ctx.db, token);
      if (r && r.clientId !== client.clientId) {
        throw new OAuthError('unauthorized_client', 'token was issued to another client');
      }
      if (r) {
        await ctx.db.transaction((tx) => revokeFamily(tx, r.familyId));
        app.authCallerCache.clear();
        req.log.info({ auth: { endpoint: 'revoke', client: client.clientId } }, 'refresh token family revoked');
      }
    }
    return reply.code(200).send({});
  });
}
