/**
 * Client authentication at the token, revocation and introspection endpoints.
 * - `private_key_jwt` (RFC 7523 §2.2/§3, OIDC Core §9, SMART Backend Services): a JWT signed with a key from the
 *   client's registered JWKS (inline or by URL), `iss` = `sub` = client_id, `aud` = the token endpoint (the issuer
 *   identifier is accepted too, as RFC 7523bis clients send it), `exp` at most 5 minutes ahead, and a `jti` that is
 *   refused when seen again before it expires.
 * - public clients (`none`): only the client_id; they must use PKCE. At refresh, a public client may omit it when the
 *   refresh token names it (RFC 6749 §6 asks only confidential clients to authenticate; fhirclient 2.x sends none).
 */
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { type DatabasePool, sql } from 'slonik';
import { type ClientRecord, clientById } from '../store.ts';
import { OAuthError } from './errors.ts';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** SMART Backend Services requires RS384 and ES384; `none` and HS* are never accepted. */
export const ASSERTION_ALGORITHMS = ['RS256', 'RS384', 'ES256', 'ES384', 'PS256', 'PS384'];
const MAX_ASSERTION_LIFETIME_S = 300;

const remoteSets = new Map<string, JWTVerifyGetKey>();

function keySet(client: ClientRecord): JWTVerifyGetKey {
  if (client.jwks) return createLocalJWKSet(client.jwks);
  const uri = client.jwksUri!;
  let set = remoteSets.get(uri);
  if (!set) {
    set = createRemoteJWKSet(new URL(uri), { timeoutDuration: 3000, cooldownDuration: 30_000 });
    remoteSets.set(uri, set);
  }
  return set;
}

export interface ClientAuthOptions {
  readonly audiences: readonly string[];
  readonly clockToleranceS: number;
}

async function verifyAssertion(
  db: DatabasePool,
  assertion: string,
  claimedId: string | undefined,
  opts: ClientAuthOptions,
): Promise<ClientRecord> {
  let unverifiedIss: unknown;
  try {
    unverifiedIss = decodeJwt(assertion).iss;
  } catch {
    throw new OAuthError('invalid_client', 'client assertion is malformed');
  }
  if (typeof unverifiedIss !== 'string') throw new OAuthError('invalid_client', 'client assertion has no iss');
  if (claimedId !== undefined && claimedId !== unverifiedIss) {
    throw new OAuthError('invalid_client', 'client_id does not match the client assertion');
  }
  const client = await clientById(db, unverifiedIss);
  if (!client?.active || client.kind === 'public') {
    throw new OAuthError('invalid_client', 'unknown client or client without keys');
  }
  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(assertion, keySet(client), {
      algorithms: ASSERTION_ALGORITHMS,
      issuer: client.clientId,
      subject: client.clientId,
      audience: [...opts.audiences],
      clockTolerance: opts.clockToleranceS,
      requiredClaims: ['exp', 'jti'],
    }));
  } catch (err) {
    const reason =
      err instanceof errors.JWTExpired
        ? 'client assertion expired'
        : err instanceof errors.JWTClaimValidationFailed
          ? `client assertion claim ${err.claim} is invalid`
          : err instanceof errors.JWKSNoMatchingKey
            ? 'client assertion kid does not match a registered key'
            : err instanceof errors.JOSEAlgNotAllowed
              ? 'client assertion algorithm not allowed'
              : 'client assertion signature could not be verified';
    throw new OAuthError('invalid_client', reason);
  }
  const now = Math.floor(Date.now() / 1000);
  const exp = payload.exp!;
  if (exp > now + MAX_ASSERTION_LIFETIME_S + opts.clockToleranceS) {
    throw new OAuthError('invalid_client', 'client assertion exp is more than 5 minutes ahead');
  }
  const jti = String(payload.jti);
  if (jti.length > 256) throw new OAuthError('invalid_client', 'client assertion jti too long');
  await db.query(sql.unsafe`DELETE FROM client_assertion_jtis WHERE expires_at < now() - interval '10 minutes'`);
  const inserted = await db.maybeOne(sql.unsafe`
    INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
    VALUES (${client.clientId}, ${jti}, to_timestamp(${exp + opts.clockToleranceS}))
    ON CONFLICT DO NOTHING RETURNING jti`);
  if (inserted === null) throw new OAuthError('invalid_client', 'client assertion jti already used');
  return client;
}

/**
 * Authenticates the client of a token/revocation request from its form parameters. `impliedPublicClient`: the client
 * the presented grant names; used when the request carries no client credentials at all, and only if it is public.
 */
export async function authenticateClient(
  db: DatabasePool,
  form: Record<string, string>,
  opts: ClientAuthOptions,
  impliedPublicClient?: string,
): Promise<ClientRecord> {
  const assertionType = form['client_assertion_type'];
  const assertion = form['client_assertion'];
  if (assertionType !== undefined || assertion !== undefined) {
    if (assertionType !== JWT_BEARER) throw new OAuthError('invalid_client', 'unsupported client_assertion_type');
    if (assertion === undefined) throw new OAuthError('invalid_client', 'client_assertion missing');
    return verifyAssertion(db, assertion, form['client_id'], opts);
  }
  if (form['client_secret'] !== undefined) throw new OAuthError('invalid_client', 'client secrets are not supported');
  const clientId = form['client_id'] ?? impliedPublicClient;
  if (clientId === undefined) throw new OAuthError('invalid_client', 'client authentication required');
  const client = await clientById(db, clientId);
  if (!client?.active) throw new OAuthError('invalid_client', 'unknown client');
  if (client.kind !== 'public')
    throw new OAuthError('invalid_client', 'this client must authenticate with private_key_jwt');
  return client;
}
