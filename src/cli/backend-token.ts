/**
 * Access tokens for `bin/ehr upload --client`: SMART Backend Services
 * (https://hl7.org/fhir/smart-app-launch/backend-services.html). The client proves itself with a JWT signed by its
 * private key (`private_key_jwt`, RFC 7523 §2.2 and §3: iss = sub = client_id, aud = the token endpoint, a random
 * jti, exp at most 5 minutes ahead), asks for `grant_type=client_credentials` (RFC 6749 §4.4) and gets a short-lived
 * bearer token, which {@link BackendTokenSource} renews before it runs out. No refresh tokens: a new assertion each time.
 * Pure apart from the injected `fetch`.
 */
import { randomUUID } from 'node:crypto';
import { type CryptoKey, importJWK, importPKCS8, type JWK, SignJWT } from 'jose';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Authentication could not be set up or the authorization server refused: the message says why. */
export class BackendAuthError extends EhrError {
  override readonly code: ErrorCode = 'EHR_BACKEND_AUTH';
  override name = 'BackendAuthError';
}

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * What STOW-RS checks for a caller (src/dicomweb/stow/store-instances.ts, src/imaging/matching.ts, src/imaging/ehr-link.ts):
 * `create` on ImagingStudy for the instance's patient, and the lookups used for matching: search on Patient (by MRN),
 * ServiceRequest (by accession) and ImagingStudy (by Study UID), and read on ServiceRequest (the order's study link).
 * The writes that link order and study run with the caller's patients only, so no further scope is needed.
 */
export const DEFAULT_UPLOAD_SCOPE = 'system/ImagingStudy.cs system/Patient.s system/ServiceRequest.rs';

/** SMART Backend Services: servers support RS384 and ES384; we also sign the others our server accepts. */
const ALGORITHMS = ['RS256', 'RS384', 'ES256', 'ES384', 'PS256', 'PS384'];
const ASSERTION_LIFETIME_S = 300;

export interface SigningKey {
  readonly key: CryptoKey;
  readonly alg: string;
  readonly kid: string | undefined;
}

function algOfJwk(jwk: JWK): string | undefined {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS384';
  if (jwk.kty === 'EC' && jwk.crv === 'P-384') return 'ES384';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  return undefined;
}

function pickJwk(parsed: unknown, kid: string | undefined): JWK {
  const isObj = (x: unknown): x is JWK => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(parsed)) throw new BackendAuthError('the key file is neither a JWK nor a JWKS');
  const keys = Array.isArray((parsed as { keys?: unknown }).keys)
    ? ((parsed as { keys: unknown[] }).keys.filter(isObj) as JWK[])
    : [parsed];
  const candidates = keys.filter((k) => kid === undefined || k.kid === kid);
  const priv = candidates.filter((k) => typeof k.d === 'string');
  if (priv.length === 0) {
    throw new BackendAuthError(
      candidates.length > 0
        ? `the key file holds no private key${kid ? ` with kid ${kid}` : ''} (a public JWK has no "d")`
        : `the key file has no key with kid ${kid}`,
    );
  }
  if (priv.length > 1) throw new BackendAuthError('the key file holds several private keys: choose one with --kid');
  return priv[0]!;
}

/**
 * The private key from a key file: a private JWK, a JWKS holding private keys (`--kid` picks one), or a PEM PKCS#8
 * key (`-----BEGIN PRIVATE KEY-----`, which needs `alg`). The algorithm comes from `alg`, else the JWK's `alg`, else
 * its key type (RSA → RS384, EC P-384 → ES384, P-256 → ES256); the kid from `kid`, else the JWK's `kid`.
 */
export async function loadSigningKey(text: string, opts: { alg?: string; kid?: string } = {}): Promise<SigningKey> {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    if (!trimmed.startsWith('-----BEGIN PRIVATE KEY-----')) {
      throw new BackendAuthError(
        'only unencrypted PKCS#8 PEM keys are read (-----BEGIN PRIVATE KEY-----); convert with ' +
          '`openssl pkcs8 -topk8 -nocrypt -in KEY -out key.p8`',
      );
    }
    if (!opts.alg) throw new BackendAuthError('a PEM key needs --alg (e.g. ES384 or RS384)');
    checkAlg(opts.alg);
    try {
      return { key: await importPKCS8(trimmed, opts.alg), alg: opts.alg, kid: opts.kid };
    } catch (err) {
      throw new BackendAuthError(`the PEM key cannot be used with ${opts.alg}: ${(err as Error).message}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    throw new BackendAuthError('the key file is neither JSON (JWK, JWKS) nor a PEM PKCS#8 key');
  }
  const jwk = pickJwk(parsed, opts.kid);
  const alg = opts.alg ?? algOfJwk(jwk);
  if (!alg) throw new BackendAuthError(`cannot tell the algorithm of a ${jwk.kty} key: give --alg`);
  checkAlg(alg);
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK({ ...jwk, alg }, alg);
  } catch (err) {
    throw new BackendAuthError(`the JWK cannot be used with ${alg}: ${(err as Error).message}`);
  }
  if (key instanceof Uint8Array) throw new BackendAuthError('symmetric keys cannot sign a client assertion');
  return { key, alg, kid: opts.kid ?? jwk.kid };
}

function checkAlg(alg: string): void {
  if (!ALGORITHMS.includes(alg)) throw new BackendAuthError(`--alg must be one of ${ALGORITHMS.join(', ')}`);
}

/** The RFC 7523 client assertion: iss = sub = client_id, aud = token endpoint, random jti, exp 5 minutes ahead. */
export async function clientAssertion(
  key: SigningKey,
  clientId: string,
  tokenUrl: string,
  nowS: number = Math.floor(Date.now() / 1000),
): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}) })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenUrl)
    .setJti(randomUUID())
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + ASSERTION_LIFETIME_S)
    .sign(key.key);
}

type Fetch = typeof fetch;

async function jsonOf(res: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const j = (await res.json()) as unknown;
    return typeof j === 'object' && j !== null ? (j as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The token endpoint from the server's SMART configuration (SMART App Launch 2.x §"Conformance":
 * `[fhir base]/.well-known/smart-configuration`, `token_endpoint`).
 */
export async function discoverTokenEndpoint(fhirBase: string, fetchFn: Fetch = fetch): Promise<string> {
  const url = `${fhirBase}/.well-known/smart-configuration`;
  let res: Response;
  try {
    res = await fetchFn(url, { headers: { accept: 'application/json' } });
  } catch (err) {
    throw new BackendAuthError(`cannot reach ${url}: ${(err as Error).message}`);
  }
  const body = res.ok ? await jsonOf(res) : undefined;
  const endpoint = body?.['token_endpoint'];
  if (typeof endpoint !== 'string' || !/^https?:\/\//.test(endpoint)) {
    throw new BackendAuthError(`${url} gave no token_endpoint (HTTP ${res.status}); give --token-url`);
  }
  return endpoint;
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly scope: string;
  /** Seconds, from `expires_in`. */
  readonly expiresIn: number;
}

export interface BackendClient {
  readonly clientId: string;
  readonly key: SigningKey;
  readonly scope: string;
  readonly tokenUrl: string;
}

/** One client_credentials request with a fresh assertion (SMART Backend Services, "Obtaining an access token"). */
export async function requestToken(client: BackendClient, fetchFn: Fetch = fetch): Promise<IssuedToken> {
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    scope: client.scope,
    client_assertion_type: JWT_BEARER,
    client_assertion: await clientAssertion(client.key, client.clientId, client.tokenUrl),
  });
  let res: Response;
  try {
    res = await fetchFn(client.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    });
  } catch (err) {
    throw new BackendAuthError(`cannot reach the token endpoint ${client.tokenUrl}: ${(err as Error).message}`);
  }
  const body = await jsonOf(res);
  if (!res.ok) {
    const why = body?.['error']
      ? `${String(body['error'])}${body['error_description'] ? `: ${String(body['error_description'])}` : ''}`
      : `HTTP ${res.status}`;
    throw new BackendAuthError(`the token endpoint refused client ${client.clientId}: ${why}`);
  }
  const token = body?.['access_token'];
  if (typeof token !== 'string' || String(body?.['token_type']).toLowerCase() !== 'bearer') {
    throw new BackendAuthError('the token endpoint answered without a bearer access_token');
  }
  const expiresIn = Number(body?.['expires_in']);
  return {
    accessToken: token,
    scope: typeof body?.['scope'] === 'string' ? body['scope'] : client.scope,
    // RFC 6749 §5.1 only recommends expires_in; without it, assume the 5 minutes SMART recommends.
    expiresIn: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 300,
  };
}

/**
 * The current access token of a backend client: fetched on first use, renewed when less than a fifth of its
 * lifetime (at most a minute) is left or after the server refused it ({@link invalidate}). Concurrent callers share
 * one request.
 */
export class BackendTokenSource {
  readonly #client: BackendClient;
  readonly #fetch: Fetch;
  readonly #now: () => number;
  #current: { token: IssuedToken; renewAt: number } | undefined;
  #pending: Promise<IssuedToken> | undefined;

  constructor(client: BackendClient, opts: { fetch?: Fetch; now?: () => number } = {}) {
    this.#client = client;
    this.#fetch = opts.fetch ?? fetch;
    this.#now = opts.now ?? Date.now;
  }

  /** The issued token (with its granted scope), renewed when due. */
  async current(): Promise<IssuedToken> {
    if (this.#current && this.#now() < this.#current.renewAt) return this.#current.token;
    this.#pending ??= requestToken(this.#client, this.#fetch).then(
      (token) => {
        const margin = Math.min(60, token.expiresIn / 5) * 1000;
        this.#current = { token, renewAt: this.#now() + token.expiresIn * 1000 - margin };
        this.#pending = undefined;
        return token;
      },
      (err: unknown) => {
        this.#pending = undefined;
        throw err;
      },
    );
    return this.#pending;
  }

  async token(): Promise<string> {
    return (await this.current()).accessToken;
  }

  /** The server refused `token` (401): the next call gets a new one. */
  invalidate(token: string): void {
    if (this.#current?.token.accessToken === token) this.#current = undefined;
  }
}
