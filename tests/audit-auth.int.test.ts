/**
 * Audit of the built-in authorization server: login succeeded or failed, token issued, client assertion
 * refused — each exactly one stored AuditEvent with the right type, subtype, agent and outcome.
 */
import type { FastifyInstance } from 'fastify';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { clientOf, eventOf, patientsOf, subtypeOf, userOf } from './helpers/audit.ts';
import { ensureClient, ensureUser } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';

let app: FastifyInstance;
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';
const user = uniq('audit-login');
const backend = uniq('audit-backend');
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

beforeAll(async () => {
  app = await testApp();
  await ensureUser(app, { username: user, roles: ['doctor'], password: PASSWORD });
  await ensureClient(app, { clientId: 'audit-app', kind: 'public', redirectUris: [REDIRECT], scope: 'user/*.rs' });
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  await ensureClient(app, { clientId: backend, kind: 'backend', jwks: { keys: [jwk] }, scope: 'system/*.rs' });
});
afterAll(async () => {
  await app?.close();
});

async function login(password: string) {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'audit-app',
    redirect_uri: REDIRECT,
    scope: 'user/*.rs',
    state: 'st',
    aud: 'http://localhost:8000/fhir',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  });
  const page = await app.inject({ method: 'GET', url: `/auth/authorize?${q}` });
  expect(page.statusCode, page.body).toBe(200);
  const fields = new URLSearchParams();
  for (const m of page.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields.set(m[1] as string, (m[2] as string).replace(/&amp;/g, '&').replace(/&quot;/g, '"'));
  }
  fields.set('username', user);
  fields.set('password', password);
  return app.inject({
    method: 'POST',
    url: '/auth/authorize',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: fields.toString(),
  });
}

test.each([
  ['failed', 401, '4', 'wrong password'],
  ['succeeded', 303, '0', PASSWORD],
])('login %s (HTTP %i) → User Authentication / Login, outcome %s', async (_name, status, outcome, password) => {
  const res = await login(password);
  expect(res.statusCode).toBe(status);
  const e = await eventOf(app, res);
  expect(e.type?.code).toBe('110114');
  expect(subtypeOf(e)).toEqual(['110122']);
  expect(e.outcome).toBe(outcome);
  expect(userOf(e)?.name).toBe(user);
  expect(JSON.stringify(e)).not.toContain(password);
});

async function assertion(jti: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(backend)
    .setSubject(backend)
    .setAudience('http://localhost:8000/auth/token')
    .setJti(jti)
    .setExpirationTime('4m')
    .sign(privateKey);
}

const tokenRequest = (a: string) =>
  app.inject({
    method: 'POST',
    url: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'system/*.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: a,
    }).toString(),
  });

test("token issued → ITI-71 with the new token's jti (never the token), then a replayed assertion is refused", async () => {
  const a = await assertion(uniq('jti'));
  const ok = await tokenRequest(a);
  expect(ok.statusCode, ok.body).toBe(200);
  const token = JSON.parse(ok.body).access_token as string;
  const e = await eventOf(app, ok);
  expect(e.type?.code).toBe('110114');
  expect(subtypeOf(e)).toEqual(['ITI-71']);
  expect(e.outcome).toBe('0');
  expect(clientOf(e)?.who?.identifier?.value).toBe(backend);
  const jti = decodeJwt(token).jti;
  expect(e.entity?.find((x) => x.role?.code === '13')?.what?.identifier?.value).toBe(
    `urn:ietf:params:oauth:jti:${jti}`,
  );
  expect(JSON.stringify(e)).not.toContain(token);
  expect(patientsOf(e)).toEqual([]);

  const replay = await tokenRequest(a);
  expect(replay.statusCode).toBe(401);
  const r = await eventOf(app, replay);
  expect(r.type?.code).toBe('110113');
  expect(subtypeOf(r)).toEqual(['110126']);
  expect(r.outcome).toBe('4');
  expect(r.outcomeDesc).toMatch(/^client assertion refused: .*jti/);
  expect(r.agent?.some((x) => x.who?.identifier?.value === backend)).toBe(true);
});
