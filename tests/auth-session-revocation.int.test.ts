/**
 * Ending a session ends its tokens, on the real stack (PostgreSQL + Orthanc), through the real authorize and token
 * endpoints over HTTP and through the code paths `bin/ehr user revoke|deactivate` use (src/auth/user-admin.ts):
 * - revoking a doctor's grant ends the doctor's launch/patient access token (FHIR and DICOMweb) and refresh token,
 *   and the viewer tokens of that patient's studies;
 * - deactivating a user ends every kind of token of that user, and reactivating revives none;
 * - a replayed authorization code ends the access token issued from it, also in a second facade process;
 * - a refresh that fails (client authentication, scope, lost patient) does not consume the refresh token.
 * Two apps share the throwaway database like two facade replicas.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { tokenKey } from '../src/auth/caller-cache.ts';
import { activateUser, deactivateUser, revokeGrant } from '../src/auth/user-admin.ts';
import { freePort } from '../src/stack/process.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { eventOf } from './helpers/audit.ts';
import { adminToken, bearer, ensureClient, ensureUser, grantPatient, tokenFor } from './helpers/auth.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';
import { uniq } from './helpers/fhir.ts';
import { sql } from 'slonik';

const tag = uniq('rv').replace(/[^A-Za-z0-9]/g, '');
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const PUBLIC = `rv-public-${tag}`;
const CONFIDENTIAL = `rv-conf-${tag}`;
const SCOPE = 'openid fhirUser launch/patient offline_access patient/*.rs user/*.rs';

let app: FastifyInstance;
let app2: FastifyInstance;
let base: string;
let data: Dataset;
let adminId: string;
let confidentialKey: CryptoKey;
let strangerKey: CryptoKey;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await buildApp(testConfig({ publicBaseUrl: base }));
  await app.listen({ port, host: '127.0.0.1' });
  app2 = await testApp({ publicBaseUrl: base });
  data = await seedDataset(app, tag);
  // The Patient resource in its own compartment (what the FHIR API stores; the DICOMweb seed leaves it out).
  await app.db.query(sql.unsafe`UPDATE patients SET patient_id = id WHERE id = ${data.A.id}`);
  adminId = await ensureUser(app, { username: 'test-admin', roles: ['admin'] });
  await ensureClient(app, { clientId: PUBLIC, kind: 'public', redirectUris: [REDIRECT], scope: SCOPE });
  const pair = await generateKeyPair('ES256', { extractable: true });
  confidentialKey = pair.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  await ensureClient(app, {
    clientId: CONFIDENTIAL,
    kind: 'confidential',
    redirectUris: [REDIRECT],
    jwks: { keys: [jwk] },
    scope: SCOPE,
  });
});
afterAll(async () => {
  await app2?.close();
  await app?.close();
});

/** A doctor with a password and a grant to patient A; returns the user id. */
async function doctor(name: string): Promise<string> {
  const username = `${name}-${tag}`;
  const id = await ensureUser(app, { username, roles: ['doctor'], password: PASSWORD });
  await grantPatient(app, username, data.A.id);
  return id;
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

/** Logs in at the authorize endpoint as a browser would, picks patient A; returns the redirect with the code. */
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
  const chosen = await postForm(`${base}/auth/authorize/patient`, { ...hiddenFields(picker), patient: data.A.id });
  expect(chosen.status).toBe(303);
  return new URL(chosen.headers.get('location')!);
}

/** PKCE S256 pair (RFC 7636 §4.2). */
async function pkce(): Promise<{ verifier: string; challenge: string }> {
  const verifier = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return { verifier, challenge: Buffer.from(digest).toString('base64url') };
}

/** A code for `client` and the doctor `username`, launch/patient with patient A. */
async function authorizationCode(client: string, username: string) {
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
  const location = await loginAndPick(`${base}/auth/authorize?${q}`, username);
  return { code: location.searchParams.get('code')!, verifier };
}

/** A private_key_jwt client assertion (RFC 7523) for the confidential client. */
async function assertion(key: CryptoKey = confidentialKey): Promise<Record<string, string>> {
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

interface TokenAnswer {
  status: number;
  body: Record<string, string>;
  headers: { 'x-request-id': string | null };
}

async function tokenRequest(form: Record<string, string>): Promise<TokenAnswer> {
  const res = await postForm(`${base}/auth/token`, form);
  const body = (await res.json()) as Record<string, string>;
  return { status: res.status, body, headers: { 'x-request-id': res.headers.get('x-request-id') } };
}

/** The tokens of a launch/patient session of the doctor through `client` (public unless confidential). */
async function launch(username: string, client = PUBLIC) {
  const { code, verifier } = await authorizationCode(client, username);
  const auth = client === CONFIDENTIAL ? await assertion() : { client_id: PUBLIC };
  const res = await tokenRequest({
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT,
    ...auth,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body['patient']).toBe(data.A.id);
  return { access: res.body['access_token']!, refresh: res.body['refresh_token']!, code, verifier };
}

const refresh = (token: string, auth: Record<string, string> = { client_id: PUBLIC }) =>
  tokenRequest({ grant_type: 'refresh_token', refresh_token: token, ...auth });

/** Waits until the NOTIFY of a committed change reached `a` and dropped the token's cached caller. */
async function invalidated(a: FastifyInstance, token: string): Promise<void> {
  while (a.authCallerCache.get(tokenKey(token)) !== undefined) await a.authCallerCache.nextClear();
}

const study = () => data.A.studies[0]!;
const reads = (token: string) => {
  const s = study();
  const series = s.series[0]!;
  return [
    ['FHIR read', `/fhir/Patient/${data.A.id}`, 'application/fhir+json'],
    ['QIDO-RS', `/dicom-web/studies?StudyInstanceUID=${s.uid}`, 'application/dicom+json'],
    ['WADO-RS metadata', `/dicom-web/studies/${s.uid}/metadata`, 'application/dicom+json'],
    [
      'WADO-RS instance',
      `/dicom-web/studies/${s.uid}/series/${series.uid}/instances/${series.instances[0]}`,
      'multipart/related; type="application/dicom"',
    ],
  ].map(([what, url, accept]) => ({ what: what!, url: url!, accept: accept!, token }));
};

async function get(a: FastifyInstance, r: { url: string; accept: string; token: string }) {
  return request(a.server).get(r.url).set(bearer(r.token)).set('accept', r.accept);
}

/** Every read of A's data with the token answers `status` (200: with A's data). */
async function expectReads(a: FastifyInstance, token: string, status: number, reason?: RegExp): Promise<void> {
  for (const r of reads(token)) {
    const res = await get(a, r);
    expect(res.status, `${r.what} ${r.url}: ${String(res.text ?? '').slice(0, 300)}`).toBe(status);
    if (status === 200 && r.what === 'QIDO-RS') expect(JSON.parse(res.text)).toHaveLength(1);
    if (status === 401) {
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
      if (reason) expect(res.headers['www-authenticate']).toMatch(reason);
    }
  }
}

describe('revoking a grant ends the launched session', () => {
  test("launch/patient: access token and refresh token end with the doctor's grant, in every process", async () => {
    const id = await doctor('rv-launch');
    const s = await launch(`rv-launch-${tag}`);
    await expectReads(app, s.access, 200);
    await expectReads(app2, s.access, 200); // cached in the second process
    expect(await revokeGrant(app.db, id, data.A.id, adminId)).toBe(true);
    await invalidated(app, s.access);
    await expectReads(app, s.access, 401, /no longer has access/);
    await invalidated(app2, s.access);
    await expectReads(app2, s.access, 401, /no longer has access/);
    // Logged and audited as any refused token: one AuditEvent, failed.
    const refused = await get(app, reads(s.access)[0]!);
    expect((await eventOf(app, refused)).outcome).not.toBe('0');

    const r = await refresh(s.refresh);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/no longer/) });
    expect((await eventOf(app, r)).outcome).not.toBe('0');
  });

  test("the doctor's own user/ token loses the patient too (404 on read, as before)", async () => {
    const id = await doctor('rv-user');
    const token = await tokenFor(app, { user: { username: `rv-user-${tag}`, roles: ['doctor'] }, scope: 'user/*.rs' });
    expect((await get(app, reads(token)[0]!)).status).toBe(200);
    await revokeGrant(app.db, id, data.A.id, adminId);
    await invalidated(app, token);
    expect((await get(app, reads(token)[0]!)).status).toBe(404);
  });

  test('a refused refresh does not consume the token: when the grant is back, the same token refreshes', async () => {
    const id = await doctor('rv-regrant');
    const s = await launch(`rv-regrant-${tag}`);
    await revokeGrant(app.db, id, data.A.id, adminId);
    expect((await refresh(s.refresh)).body['error']).toBe('invalid_grant');
    await grantPatient(app, `rv-regrant-${tag}`, data.A.id);
    const again = await refresh(s.refresh);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body['patient']).toBe(data.A.id);
  });

  test('a viewer token ends when its user loses the study', async () => {
    const username = `rv-viewer-${tag}`;
    const id = await doctor('rv-viewer');
    const own = await tokenFor(app, { user: { username, roles: ['doctor'] }, scope: 'user/*.rs' });
    const viewer = await viewerToken(own);
    const qido = reads(viewer)[1]!;
    const wado = reads(viewer)[2]!;
    expect((await get(app, qido)).status).toBe(200);
    expect((await get(app, wado)).status).toBe(200);
    await revokeGrant(app.db, id, data.A.id, adminId);
    await invalidated(app, viewer);
    for (const r of [qido, wado]) {
      const res = await get(app, r);
      expect(res.status, r.url).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/no longer has access/);
    }
  });
});

describe('deactivating a user ends all of their tokens', () => {
  test('launch access and refresh tokens, viewer tokens and user/ tokens; reactivation revives none', async () => {
    const username = `rv-deact-${tag}`;
    const id = await doctor('rv-deact');
    const s = await launch(username);
    const confidential = await launch(username, CONFIDENTIAL);
    const own = await tokenFor(app, { user: { username, roles: ['doctor'] }, scope: 'user/*.rs' });
    const viewer = await viewerToken(own);
    const access = [s.access, confidential.access, own, viewer];
    for (const t of access) expect((await get(app, reads(t)[1]!)).status).toBe(200);
    expect(await deactivateUser(app.db, id)).toBe(true);
    for (const t of access) {
      await invalidated(app, t);
      const res = await get(app, reads(t)[1]!);
      expect(res.status).toBe(401);
    }
    expect((await refresh(s.refresh)).body['error']).toBe('invalid_grant');
    expect((await refresh(confidential.refresh, await assertion())).body['error']).toBe('invalid_grant');

    expect(await activateUser(app.db, id)).toBe(true);
    for (const t of access) {
      await invalidated(app, t);
      const res = await get(app, reads(t)[1]!);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/revoked/);
    }
    expect((await refresh(s.refresh)).body['error']).toBe('invalid_grant');
    // A new session works again (once `iat`, whole seconds, can be later than the deactivation).
    await afterTokensNotBefore(id);
    const fresh = await launch(username);
    expect((await get(app, reads(fresh.access)[1]!)).status).toBe(200);
  });
});

describe('a replayed authorization code ends the access token issued from it', () => {
  test('the first access token is refused in this process and in another one; the refresh token is dead', async () => {
    await doctor('rv-replay');
    const s = await launch(`rv-replay-${tag}`);
    const probe = reads(s.access)[0]!;
    expect((await get(app, probe)).status).toBe(200);
    expect((await get(app2, probe)).status).toBe(200); // cached in the second process
    expect(app2.authCallerCache.get(tokenKey(s.access))).toBeDefined();
    const replay = await tokenRequest({
      grant_type: 'authorization_code',
      code: s.code,
      code_verifier: s.verifier,
      redirect_uri: REDIRECT,
      client_id: PUBLIC,
    });
    expect(replay.status).toBe(400);
    expect(replay.body['error']).toBe('invalid_grant');
    const here = await get(app, probe);
    expect(here.status).toBe(401);
    expect(here.headers['www-authenticate']).toMatch(/token revoked/);
    await invalidated(app2, s.access);
    const there = await get(app2, probe);
    expect(there.status).toBe(401);
    expect(there.headers['www-authenticate']).toMatch(/token revoked/);
    expect((await refresh(s.refresh)).body['error']).toBe('invalid_grant');
  });

  test('a reused refresh token also ends the access tokens of its grant', async () => {
    await doctor('rv-reuse');
    const s = await launch(`rv-reuse-${tag}`);
    const rotated = await refresh(s.refresh);
    expect(rotated.status).toBe(200);
    const newAccess = rotated.body['access_token']!;
    expect((await get(app, reads(newAccess)[0]!)).status).toBe(200);
    expect((await refresh(s.refresh)).body['error']).toBe('invalid_grant');
    for (const t of [s.access, newAccess]) {
      const res = await get(app, reads(t)[0]!);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/token revoked/);
    }
  });

  test('expired denylist and issued-token rows are purged', async () => {
    await app.db.query(sql.unsafe`
      INSERT INTO revoked_tokens (jti, expires_at) VALUES (${`old-${tag}`}, now() - interval '1 day')`);
    await doctor('rv-purge');
    const s = await launch(`rv-purge-${tag}`);
    await refresh(s.refresh);
    await refresh(s.refresh); // a replay: revokes the family, which purges
    const left = await app.db.maybeOne(sql.unsafe`SELECT 1 AS x FROM revoked_tokens WHERE jti = ${`old-${tag}`}`);
    expect(left).toBeNull();
    const expired = await app.db.oneFirst(
      sql.unsafe`SELECT count(*)::int FROM issued_access_tokens WHERE expires_at < now()`,
    );
    expect(expired).toBe(0);
  });
});

describe('a refresh token is consumed only by a refresh that succeeds', () => {
  test.each([
    ['no client authentication', async () => ({})],
    ['the public client_id of another client', async () => ({ client_id: PUBLIC })],
    ['an assertion signed with a key the client never registered', async () => assertion(strangerKey)],
    ['a scope beyond the grant', async () => ({ ...(await assertion()), scope: 'system/*.rs' })],
  ])('confidential client, %s: refused, and a correct retry refreshes', async (_name, badAuth) => {
    await doctor('rv-conf');
    const s = await launch(`rv-conf-${tag}`, CONFIDENTIAL);
    const bad = await refresh(s.refresh, await badAuth());
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
    expect(['invalid_client', 'invalid_grant', 'invalid_scope']).toContain(bad.body['error']);
    const retry = await refresh(s.refresh, await assertion());
    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
    expect(retry.body['patient']).toBe(data.A.id);
  });

  test('a public client may omit client_id; the old token is then used up (rotation)', async () => {
    await doctor('rv-pub');
    const s = await launch(`rv-pub-${tag}`);
    const r = await refresh(s.refresh, {});
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body['refresh_token']).not.toBe(s.refresh);
    expect((await get(app, reads(r.body['access_token']!)[0]!)).status).toBe(200);
    expect((await refresh(r.body['refresh_token']!, {})).status).toBe(200);
  });

  test('a confidential client may not omit its authentication', async () => {
    await doctor('rv-conf2');
    const s = await launch(`rv-conf2-${tag}`, CONFIDENTIAL);
    const r = await refresh(s.refresh, {});
    expect(r.status).toBe(401);
    expect(r.body['error']).toBe('invalid_client');
  });
});

/**
 * fhirclient 2.x, loaded untyped: its type declarations pull the DOM library into the whole compilation. The part of
 * its Node API used here.
 */
interface FhirClientSession {
  readonly patient: { readonly id: string | null; read(): Promise<unknown> };
  readonly state: { readonly tokenResponse?: { access_token?: string; refresh_token?: string } };
  refresh(): Promise<unknown>;
}
type FhirClientSmart = (
  req: IncomingMessage,
  res: ServerResponse,
  storage: unknown,
) => {
  authorize(options: Record<string, string>): Promise<unknown>;
  ready(): Promise<FhirClientSession>;
};
const smart = createRequire(import.meta.url)('fhirclient') as FhirClientSmart;

describe('fhirclient (the SMART JS client): its own launch and refresh', () => {
  /** fhirclient's server-side storage: one session. */
  function sessionStorage() {
    const session: Record<string, unknown> = {};
    return {
      get: async (key: string) => session[key],
      set: async (key: string, value: unknown) => {
        session[key] = value;
        return value;
      },
      unset: async (key: string) => {
        const had = key in session;
        delete session[key];
        return had;
      },
    };
  }
  /** The app's own HTTP exchange as fhirclient's Node adapter sees it (it only reads the URL and Host). */
  function exchange(url: string) {
    let location = '';
    const req = { url, headers: { host: '127.0.0.1:9' }, socket: {} } as unknown as IncomingMessage;
    const res = {
      writeHead: (_status: number, headers: { location: string }) => {
        location = headers.location;
      },
      end: () => undefined,
    } as unknown as ServerResponse;
    return { req, res, location: () => location };
  }

  test('launch with fhirclient, then fhirclient.refresh() (no client_id, as fhirclient sends it) and read on', async () => {
    await doctor('rv-fhirclient');
    const storage = sessionStorage();
    const launching = exchange('/launch');
    await smart(launching.req, launching.res, storage).authorize({
      iss: `${base}/fhir`,
      clientId: PUBLIC,
      scope: 'launch/patient patient/*.rs offline_access openid fhirUser',
      redirectUri: REDIRECT,
    });
    const callback = await loginAndPick(launching.location(), `rv-fhirclient-${tag}`);
    const back = exchange(`${callback.pathname}${callback.search}`);
    const client = await smart(back.req, back.res, storage).ready();
    expect(client.patient.id).toBe(data.A.id);
    const first = client.state.tokenResponse!;
    expect(((await client.patient.read()) as { id: string }).id).toBe(data.A.id);

    await client.refresh();
    const second = client.state.tokenResponse!;
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(((await client.patient.read()) as { id: string }).id).toBe(data.A.id);
    // The refresh used up the first refresh token (rotation), and the new one refreshes again.
    expect((await refresh(first.refresh_token!, {})).body['error']).toBe('invalid_grant');
  });
});

/** A viewer link's token for A's first study, through the real route (the doctor's own token asks for it). */
async function viewerToken(own: string): Promise<string> {
  const admin = bearer(await adminToken(app));
  const order = await request(app.server)
    .post('/fhir/ServiceRequest')
    .set(admin)
    .set('content-type', 'application/fhir+json')
    .send({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24627-2' }] },
      subject: { reference: `Patient/${data.A.id}` },
    });
  expect(order.status, order.text).toBe(201);
  // The order's study, as STOW-RS matching or the change feed would record it.
  await app.db.query(sql.unsafe`UPDATE orders SET study_instance_uid = NULL WHERE study_instance_uid = ${study().uid}`);
  await app.db.query(sql.unsafe`UPDATE orders SET study_instance_uid = ${study().uid} WHERE id = ${order.body.id}`);
  const link = await request(app.server).get(`/api/v1/dicom/viewer-url/${order.body.id}`).set(bearer(own));
  expect(link.status, link.text).toBe(200);
  const url = new URL((link.body as { viewer_url: string }).viewer_url);
  return new URLSearchParams(url.hash.slice(1)).get('token')!;
}

/** Waits until the clock's whole second is past the user's `tokens_not_before` (a new token's `iat` is then later). */
async function afterTokensNotBefore(userId: string): Promise<void> {
  const nb = Number(
    await app.db.oneFirst(
      sql.unsafe`SELECT extract(epoch FROM tokens_not_before)::float8 FROM users WHERE id = ${userId}`,
    ),
  );
  const wait = (Math.floor(nb) + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
