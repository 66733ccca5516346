/**
 * The built-in authorization server end to end, driven by a real OAuth client library (openid-client) over HTTP:
 * SMART standalone launch (code + PKCE + login page + patient picker) and SMART Backend Services
 * (client_credentials + private_key_jwt), refresh token rotation, revocation, introspection and login rate limits.
 */
import type { FastifyInstance } from 'fastify';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, ensureClient, ensureUser, grantPatient } from './helpers/auth.ts';
import type { RouteRules } from '../src/http/route-rules.ts';

/** A test route: any token, not audited (it discloses nothing). */
const TEST_RULES: RouteRules = { who: 'token', audit: { none: 'test route' }, dialect: 'plain' };

let app: FastifyInstance;
let base: string;
let smart: oidc.ServerMetadata;
const REDIRECT = 'http://127.0.0.1:9/callback';
const PATIENT_A = 'flow-pat-a';
const PATIENT_B = 'flow-pat-b';
const PASSWORD = 'correct horse battery staple';

async function seedPatient(id: string): Promise<void> {
  await app.db.query(sql.unsafe`
    INSERT INTO patients (id, version_id, last_updated, content, patient_id)
    VALUES (${id}, 1, now(), ${sql.jsonb({ resourceType: 'Patient', id, name: [{ family: `Family-${id}` }] })}, ${id})
    ON CONFLICT (id) DO NOTHING`);
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await buildApp(
    testConfig({ publicBaseUrl: base, authLoginMaxFailuresPerUser: 3, authLoginMaxFailuresPerIp: 12 }),
  );
  app.get('/test/whoami', { config: { rules: TEST_RULES } }, async (req) => ({
    kind: req.access.kind,
    patient: req.access.patientContext ?? null,
    patients: req.access.patientFilter('read', 'Patient'),
  }));
  await app.listen({ port, host: '127.0.0.1' });
  await seedPatient(PATIENT_A);
  await seedPatient(PATIENT_B);
  await ensureUser(app, { username: 'flow-doctor', roles: ['doctor'], password: PASSWORD, practitionerId: 'prac-1' });
  await grantPatient(app, 'flow-doctor', PATIENT_A);
  await ensureClient(app, {
    clientId: 'flow-app',
    kind: 'public',
    redirectUris: [REDIRECT],
    scope: 'openid fhirUser launch/patient offline_access patient/*.rs user/*.rs',
  });
  smart = (await (await fetch(`${base}/fhir/.well-known/smart-configuration`)).json()) as oidc.ServerMetadata;
});
afterAll(async () => {
  await app.close();
});

function publicClient(): oidc.Configuration {
  const c = new oidc.Configuration(smart, 'flow-app', undefined, oidc.None());
  oidc.allowInsecureRequests(c);
  return c;
}

function hiddenFields(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    out[m[1]!] = m[2]!
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
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

/** Standalone launch as a browser would do it; returns the tokens. */
async function standaloneLaunch(scope: string, pick: string, username = 'flow-doctor') {
  const config = publicClient();
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope,
    state,
    aud: `${base}/fhir`,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const login = await fetch(url);
  expect(login.status).toBe(200);
  const loginHtml = await login.text();
  expect(loginHtml).toContain('name="password"');
  const afterLogin = await postForm(`${base}/auth/authorize`, {
    ...hiddenFields(loginHtml),
    username,
    password: PASSWORD,
  });
  let location: string;
  if (afterLogin.status === 200) {
    const picker = await afterLogin.text();
    expect(picker).toContain('Choose a patient');
    expect(picker).toContain(`value="${PATIENT_A}"`);
    expect(picker).not.toContain(PATIENT_B); // not granted: not offered
    const chosen = await postForm(`${base}/auth/authorize/patient`, { ...hiddenFields(picker), patient: pick });
    expect(chosen.status).toBe(303);
    location = chosen.headers.get('location')!;
  } else {
    expect(afterLogin.status).toBe(303);
    location = afterLogin.headers.get('location')!;
  }
  return oidc.authorizationCodeGrant(config, new URL(location), { pkceCodeVerifier: verifier, expectedState: state });
}

describe('SMART standalone launch: authorization code + PKCE + patient picker', () => {
  test('a doctor picks a granted patient; the token reads that patient only', async () => {
    const tokens = await standaloneLaunch('openid fhirUser launch/patient offline_access patient/*.rs', PATIENT_A);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.patient).toBe(PATIENT_A);
    expect(tokens.expires_in).toBeLessThanOrEqual(3600);
    expect(tokens.scope?.split(' ').sort()).toEqual([
      'fhirUser',
      'launch/patient',
      'offline_access',
      'openid',
      'patient/*.rs',
    ]);
    expect(tokens.claims()?.['fhirUser']).toBe('Practitioner/prac-1');
    const me = await fetch(`${base}/test/whoami`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(await me.json()).toEqual({
      kind: 'patient',
      patient: PATIENT_A,
      patients: { all: false, patientIds: [PATIENT_A] },
    });
    // Then read data through the FHIR API with the token: its patient, and nobody else.
    const fhir = (id: string) =>
      fetch(`${base}/fhir/Patient/${id}`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const own = await fhir(PATIENT_A);
    expect(own.status).toBe(200);
    expect(((await own.json()) as { id: string }).id).toBe(PATIENT_A);
    expect((await fhir(PATIENT_B)).status).toBe(404);
  });

  test('picking a patient that is not granted is refused and no code is issued', async () => {
    await expect(standaloneLaunch('launch/patient patient/*.rs', PATIENT_B)).rejects.toThrow();
  });

  test('scopes above the client ceiling are not granted', async () => {
    const tokens = await standaloneLaunch('user/*.cruds system/*.rs', PATIENT_A);
    expect(tokens.scope).toBe('user/*.rs');
  });

  test('plain PKCE and a missing aud are refused with a redirect carrying the error', async () => {
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: 'flow-app',
      redirect_uri: REDIRECT,
      scope: 'patient/*.rs',
      state: 's1',
      aud: `${base}/fhir`,
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'plain',
    });
    const plain = await fetch(`${base}/auth/authorize?${q}`, { redirect: 'manual' });
    expect(plain.status).toBe(303);
    expect(new URL(plain.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
    q.set('code_challenge_method', 'S256');
    q.delete('aud');
    const noAud = await fetch(`${base}/auth/authorize?${q}`, { redirect: 'manual' });
    expect(new URL(noAud.headers.get('location')!).searchParams.get('error_description')).toMatch(/aud/);
  });

  test('an unregistered redirect_uri is shown as an error page, never redirected', async () => {
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: 'flow-app',
      redirect_uri: 'https://evil.example/cb',
    });
    const res = await fetch(`${base}/auth/authorize?${q}`, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  test('a code works once; its second use fails and revokes what it issued', async () => {
    const config = publicClient();
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'user/*.rs offline_access',
      state: 'st',
      aud: `${base}/fhir`,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const html = await (await fetch(url)).text();
    const res = await postForm(`${base}/auth/authorize`, {
      ...hiddenFields(html),
      username: 'flow-doctor',
      password: PASSWORD,
    });
    const callback = new URL(res.headers.get('location')!);
    const first = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: 'st',
    });
    await expect(
      oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: 'st' }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(oidc.refreshTokenGrant(config, first.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('refresh tokens and revocation', () => {
  test('a refresh token works once and is rotated; reusing it revokes the family', async () => {
    const config = publicClient();
    const tokens = await standaloneLaunch('launch/patient patient/*.rs offline_access', PATIENT_A);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).toBeDefined();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.patient).toBe(PATIENT_A);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // The reuse looked like theft: the rotated token is dead too.
    await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  test('a revoked access token is refused; introspection reports it inactive', async () => {
    const config = publicClient();
    const tokens = await standaloneLaunch('launch/patient patient/*.rs', PATIENT_A);
    const auth = { authorization: `Bearer ${tokens.access_token}` };
    expect((await fetch(`${base}/test/whoami`, { headers: auth })).status).toBe(200);
    const admin = { authorization: `Bearer ${await adminToken(app)}` };
    const before = await postForm(`${base}/auth/introspect`, { token: tokens.access_token });
    expect(before.status).toBe(401);
    const intro = async () =>
      (
        await fetch(`${base}/auth/introspect`, {
          method: 'POST',
          headers: { ...admin, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: tokens.access_token }),
        })
      ).json();
    expect(await intro()).toMatchObject({ active: true, patient: PATIENT_A, client_id: 'flow-app' });
    await oidc.tokenRevocation(config, tokens.access_token);
    const after = await fetch(`${base}/test/whoami`, { headers: auth });
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toMatch(/token revoked/);
    expect(await intro()).toEqual({ active: false });
  });
});

describe('SMART Backend Services: client_credentials + private_key_jwt', () => {
  let privateKey: CryptoKey;
  const kid = 'backend-key-1';
  beforeAll(async () => {
    const pair = await generateKeyPair('ES384');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES384' };
    await ensureClient(app, {
      clientId: 'flow-backend',
      scope: 'system/*.rs',
      patients: [PATIENT_A],
      jwks: { keys: [jwk] },
    });
  });

  test('the client gets a token with its registered key and reads only its patients', async () => {
    const config = new oidc.Configuration(smart, 'flow-backend', {}, oidc.PrivateKeyJwt({ key: privateKey, kid }));
    oidc.allowInsecureRequests(config);
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'system/*.cruds' });
    expect(tokens.scope).toBe('system/*.rs');
    expect(tokens.refresh_token).toBeUndefined();
    const me = await fetch(`${base}/test/whoami`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(await me.json()).toEqual({
      kind: 'system',
      patient: null,
      patients: { all: false, patientIds: [PATIENT_A] },
    });
    const search = await fetch(`${base}/fhir/Patient`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(search.status).toBe(200);
    const bundle = (await search.json()) as { entry?: { resource: { id: string } }[] };
    expect(bundle.entry?.map((e) => e.resource.id)).toEqual([PATIENT_A]);
  });

  async function assertion(jti: string, key: CryptoKey = privateKey, aud = `${base}/auth/token`): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES384', kid })
      .setIssuer('flow-backend')
      .setSubject('flow-backend')
      .setAudience(aud)
      .setJti(jti)
      .setExpirationTime('4m')
      .sign(key);
  }
  const tokenRequest = (a: string) =>
    postForm(`${base}/auth/token`, {
      grant_type: 'client_credentials',
      scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: a,
    });

  test('a replayed assertion (same jti) is refused', async () => {
    const a = await assertion('jti-replay-1');
    expect((await tokenRequest(a)).status).toBe(200);
    const again = await tokenRequest(a);
    expect(again.status).toBe(401);
    expect(await again.json()).toEqual({
      error: 'invalid_client',
      error_description: 'client assertion jti already used',
    });
  });

  test.each([
    ['signed by an unregistered key', async () => assertion('j2', (await generateKeyPair('ES384')).privateKey)],
    ['for another audience', async () => assertion('j3', privateKey, 'https://other.example/token')],
    [
      'alg none',
      async () =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"iss":"flow-backend","sub":"flow-backend"}').toString('base64url')}.`,
    ],
  ])('an assertion %s is refused with invalid_client', async (_n, make) => {
    const res = await tokenRequest(await make());
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
  });

  test('a public client cannot use client_credentials', async () => {
    const res = await postForm(`${base}/auth/token`, {
      grant_type: 'client_credentials',
      client_id: 'flow-app',
      scope: 'system/*.rs',
    });
    expect(res.status).toBe(401);
  });
});

describe('login brute-force protection', () => {
  async function tryLogin(username: string, password: string): Promise<number> {
    const config = publicClient();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'user/*.rs',
      state: 'st',
      aud: `${base}/fhir`,
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const html = await (await fetch(url)).text();
    return (await postForm(`${base}/auth/authorize`, { ...hiddenFields(html), username, password })).status;
  }

  test('per user: after 3 failures even the right password is refused', async () => {
    await ensureUser(app, { username: 'flow-victim', roles: ['doctor'], password: PASSWORD });
    for (let i = 0; i < 3; i++) expect(await tryLogin('flow-victim', 'wrong password')).toBe(401);
    expect(await tryLogin('flow-victim', PASSWORD)).toBe(429);
  });

  test('per IP: many failures across user names block the address', async () => {
    for (let i = 0; i < 9; i++) expect([401, 429]).toContain(await tryLogin(`nobody-${i}`, 'x'));
    expect(await tryLogin('flow-doctor', PASSWORD)).toBe(429);
  });
});
