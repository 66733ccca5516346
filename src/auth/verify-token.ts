/**
 * Access token verification with `jose` (RFC 7519 JWT, RFC 7515 JWS, RFC 6750 bearer usage).
 *
 * Order of checks: header shape → algorithm allowlist (RS256/ES256/PS256; `none` and HS* never) → `kid` present →
 * `iss` is a configured issuer → signature with that issuer's key for `kid` → `aud` equals the issuer's audience (our
 * FHIR base URL) → `exp`/`nbf` with a small leeway → required claims. Every failure is a {@link TokenError} whose
 * message is safe to return in `error_description`.
 */
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A token the resource server refuses (401 invalid_token). The message names the reason. */
export class TokenError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUTH_INVALID_TOKEN';
  override name = 'TokenError';
}

export const ACCESS_TOKEN_ALGORITHMS = ['RS256', 'ES256', 'PS256'] as const;
/** Larger tokens are refused before any parsing (ours are < 2 KB; typical IdP tokens < 4 KB). */
export const MAX_TOKEN_LENGTH = 8192;

export interface TrustedIssuer {
  readonly issuer: string;
  /** The `aud` tokens must carry: our FHIR base URL unless configured otherwise. */
  readonly audience: string;
  readonly getKey: JWTVerifyGetKey;
  /** The built-in authorization server (its users and clients live in our database). */
  readonly builtin: boolean;
}

export interface VerifiedToken {
  readonly issuer: TrustedIssuer;
  readonly claims: JWTPayload & Record<string, unknown>;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Extracts the bearer token from the raw request headers (RFC 6750 §2.1). Refuses a missing header, another scheme,
 * and several Authorization headers (Node would silently keep the first one).
 */
export function bearerToken(rawHeaders: readonly string[]): string {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1]!);
  }
  if (values.length === 0) throw new TokenError('missing bearer token');
  if (values.length > 1) throw new TokenError('more than one Authorization header');
  const m = /^Bearer +([^\s]+) *$/i.exec(values[0]!);
  if (!m) throw new TokenError('Authorization scheme must be Bearer');
  return m[1]!;
}

/**
 * The bearer token of the request, or undefined where {@link bearerToken} refuses the headers (for guards that only
 * narrow access: the resource server has already refused such a request).
 */
export function bearerTokenIfAny(rawHeaders: readonly string[]): string | undefined {
  try {
    return bearerToken(rawHeaders);
  } catch (err) {
    if (err instanceof TokenError) return undefined;
    throw err;
  }
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token not yet valid (nbf)';
    if (err.claim === 'aud') return 'token audience is not this server';
    if (err.claim === 'iss') return 'token issuer is not trusted';
    return `token claim ${err.claim} is invalid`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token kid does not match a key of its issuer';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'token kid is ambiguous';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return 'issuer keys unavailable';
  if (err instanceof errors.JOSEError) return 'token is malformed';
  return 'token could not be verified';
}

/** Verifies an access token against the trusted issuers. Throws {@link TokenError}. */
export async function verifyAccessToken(
  token: string,
  issuers: ReadonlyMap<string, TrustedIssuer>,
  clockToleranceS: number,
): Promise<VerifiedToken> {
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('token too large');
  if (!JWT_SHAPE.test(token)) throw new TokenError('token is not a compact JWS');
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new TokenError('token is malformed');
  }
  if (typeof header.alg !== 'string' || !(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(header.alg)) {
    throw new TokenError(`token algorithm ${JSON.stringify(header.alg ?? null)} not allowed`);
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw new TokenError('token header has no kid');
  if (header.crit !== undefined) throw new TokenError('token has unsupported critical header parameters');
  const issuer = typeof unverified.iss === 'string' ? issuers.get(unverified.iss) : undefined;
  if (!issuer) throw new TokenError('token issuer is not trusted');
  try {
    const { payload } = await jwtVerify(token, issuer.getKey, {
      algorithms: [...ACCESS_TOKEN_ALGORITHMS],
      issuer: issuer.issuer,
      audience: issuer.audience,
      clockTolerance: clockToleranceS,
      requiredClaims: ['exp', 'sub'],
    });
    return { issuer, claims: payload as JWTPayload & Record<string, unknown> };
  } catch (err) {
    throw new TokenError(describe(err));
  }
}
