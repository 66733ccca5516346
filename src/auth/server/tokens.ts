/**
 * Minting of the built-in server's tokens: JWT access tokens (RFC 9068 profile, `typ: at+jwt`, audience = our FHIR base
 * URL, lifetime ≤ 1 h), OpenID Connect id_tokens (SMART `openid fhirUser`), and opaque refresh tokens and codes that
 * are stored only as SHA-256 hashes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { KeyStore } from '../signing-keys.ts';
import type { AuthUrls } from './discovery.ts';

export interface MintContext {
  readonly keys: KeyStore;
  readonly urls: AuthUrls;
  readonly accessTokenTtlS: number;
}

export interface AccessTokenRequest {
  readonly sub: string;
  readonly clientId: string;
  readonly scope: string;
  readonly patient?: string | undefined;
  readonly fhirUser?: string | undefined;
  /** Shorter lifetimes only; never more than the configured lifetime (≤ 1 h). */
  readonly ttlS?: number;
}

export interface MintedToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresIn: number;
}

export function newOpaqueToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export async function mintAccessToken(ctx: MintContext, r: AccessTokenRequest): Promise<MintedToken> {
  const key = await ctx.keys.signingKey();
  const ttl = Math.min(r.ttlS ?? ctx.accessTokenTtlS, ctx.accessTokenTtlS, 3600);
  const jti = randomUUID();
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    scope: r.scope,
    client_id: r.clientId,
    ...(r.patient !== undefined ? { patient: r.patient } : {}),
    ...(r.fhirUser !== undefined ? { fhirUser: r.fhirUser } : {}),
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(ctx.urls.issuer)
    .setSubject(r.sub)
    .setAudience(ctx.urls.fhirBase)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttl)
    .setJti(jti)
    .sign(key.key);
  return { token, jti, expiresIn: ttl };
}

/** OpenID Connect Core §2 id_token: audience is the client; `fhirUser` when the user is a Practitioner. */
export async function mintIdToken(
  ctx: MintContext,
  r: { sub: string; clientId: string; fhirUser?: string | undefined; nonce?: string | null; name?: string },
): Promise<string> {
  const key = await ctx.keys.signingKey();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    ...(r.fhirUser ? { fhirUser: r.fhirUser } : {}),
    ...(r.nonce ? { nonce: r.nonce } : {}),
    ...(r.name ? { name: r.name } : {}),
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(ctx.urls.issuer)
    .setSubject(r.sub)
    .setAudience(r.clientId)
    .setIssuedAt(now)
    .setExpirationTime(now + ctx.accessTokenTtlS)
    .sign(key.key);
}
