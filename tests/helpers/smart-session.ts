/**
 * SMART sessions against a listening facade, driven over HTTP as a browser and an app would: the login page, the
 * patient picker, the token endpoint (public client, or confidential with a private_key_jwt assertion, RFC 7523).
 *
 *   const s = await smartSessions(app, base, patientId, tag);   // registers a public and a confidential client
 *   const userId = await s.doctor('name');                      // a doctor granted `patientId`
 *   const { access, refresh } = await s.launch('name-' + tag);  // launch/patient, picks `patientId`
 */
import type { FastifyInstance } from 'fastify';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { expect } from 'vitest';
import { ensureClient, ensureUser, grantPatient } from './auth.ts';

export const REDIRECT = 'http://127.0.0.1:9/callback';
export const PASSWORD = 'correct horse battery staple';
export const SCOPE = 'openid fhirUser launch/patient offline_access patient/*.rs user/*.rs';

export interface TokenAnswer {
  status: number;
  body: Record<string, string>;
  headers: { 'x-request-id': string | null };
}

function hiddenFields(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    out[m[1]!] = m[2]!
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, '&');
  }
  return out;
}

async function postForm(url: string, form: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
}

/** PKCE S256 pair (RFC 7636 §4.2). */
async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return { verifier, challenge: Buffer.from(digest).toString('base64url') };
}

export async function smartSessions(app: FastifyInstance, base: string, patientId: string, tag: string) {
  const PUBLIC = `ss-public-${tag}`;
  const CONFIDENTIAL = `ss-conf-${tag}`;
  await ensureClient(app, { clientId: PUBLIC, kind: 'public', redirectUris: [REDIRECT], scope: SCOPE });
  const pair = await generateKeyPair('ES256', { extractable: true });
  const strangerKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  await ensureClient(app, {
    clientId: CONFIDENTIAL,
    kind: 'confidential',
    redirectUris: [REDIRECT],
    jwks: { keys: [jwk] },
    scope: SCOPE,
  });

  /** A doctor (user name `${name}-${tag}`) with a password and a grant to the patient; returns the user id. */
  async function doctor(name: string): Promise<string> {
    const username = `${name}-${tag}`;
    const id = await ensureUser(app, { username, roles: ['doctor'], password: PASSWORD });
    await grantPatient(app, username, patientId);
    return id;
  }

  /** Logs in at the authorize endpoint as a browser would and picks the patient; returns the redirect (code). */
  async function loginAndPick(authorizeUrl: string, username: string): Promise<URL> {
    const login = await fetch(authorizeUrl);
    expect(login.status).toBe(200);
    const afterLogin = await postForm(`${base}/auth/authorize`, {
      ...hiddenFields(await login.text()),
      username,
      password: PASSWORD,
    });
    expect(afterLogin.status).toBe(200);
    const picker = await afterLogin.text();
    const chosen = await postForm(`${base}/auth/authorize/patient`, { ...hiddenFields(picker), patient: patientId });
    expect(chosen.status).toBe(303);
    return new URL(chosen.headers.get('location')!);
  }

  /** A private_key_jwt client assertion for the confidential client (signed with `key`: its registered one). */
  async function assertion(key: CryptoKey = pair.privateKey): Promise<Record<string, string>> {
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(CONFIDENTIAL)
      .setSubject(CONFIDENTIAL)
      .setAudience(`${base}/auth/token`)
      .setJti(crypto.randomUUID())
      .setExpirationTime('2m')
      .sign(key);
    return { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: jwt };
  }

  async function tokenRequest(form: Record<string, string>): Promise<TokenAnswer> {
    const res = await postForm(`${base}/auth/token`, form);
    const body = (await res.json()) as Record<string, string>;
    return { status: res.status, body, headers: { 'x-request-id': res.headers.get('x-request-id') } };
  }

  /** A code of a launch/patient session of `username` through `client`, not yet redeemed. */
  async function authorize(username: string, client = PUBLIC): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = await pkce();
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: client,
      redirect_uri: REDIRECT,
      scope: SCOPE,
      state: 'st',
      aud: `${base}/fhir`,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    const code = (await loginAndPick(`${base}/auth/authorize?${q}`, username)).searchParams.get('code')!;
    return { code, verifier };
  }

  /** Redeems a code at the token endpoint (RFC 6749 §4.1.3). */
  async function redeemCode(code: string, verifier: string, client = PUBLIC): Promise<TokenAnswer> {
    const auth = client === CONFIDENTIAL ? await assertion() : { client_id: PUBLIC };
    return tokenRequest({
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT,
      ...auth,
    });
  }

  /** The tokens of a launch/patient session of `username` through `client` (public unless confidential). */
  async function launch(username: string, client = PUBLIC) {
    const { code, verifier } = await authorize(username, client);
    const res = await redeemCode(code, verifier, client);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body['patient']).toBe(patientId);
    return { access: res.body['access_token']!, refresh: res.body['refresh_token']!, code, verifier };
  }

  /** A refresh; the public client's `client_id` unless other client parameters are given. */
  const refresh = (token: string, auth: Record<string, string> = { client_id: PUBLIC }) =>
    tokenRequest({ grant_type: 'refresh_token', refresh_token: token, ...auth });

  return {
    PUBLIC,
    CONFIDENTIAL,
    strangerKey,
    doctor,
    loginAndPick,
    assertion,
    tokenRequest,
    authorize,
    redeemCode,
    launch,
    refresh,
  };
}
