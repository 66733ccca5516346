/**
 * Ending a session ends its tokens, on the real stack (PostgreSQL + Orthanc), through the real authorize and token
 * endpoints over HTTP and through the code paths `bin/ehr user revoke|deactivate` use (src/auth/user-admin.ts):
 * - revoking a doctor's grant ends the doctor's launch/patient access token (FHIR and DICOMweb) and refresh token,
 *   and the viewer tokens of that patient's studies;
 * - deactivating a user ends every kind of token of that user, and reactivating revives none;
 * - a replayed authorization code (or a reused refresh token) ends the access tokens issued from it, also in a second
 *   facade process.
 * Two apps share the throwaway database like two facade replicas.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { tokenKey } from '../src/auth/caller-cache.ts';
import { activateUser, deactivateUser, revokeGrant } from '../src/auth/user-admin.ts';
import { freePort } from '../src/stack/process.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { eventOf } from './helpers/audit.ts';
import { adminToken, bearer, ensureUser, grantPatient, tokenFor } from './helpers/auth.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';
import { uniq } from './helpers/fhir.ts';
import { REDIRECT, smartSessions } from './helpers/smart-session.ts';

const tag = uniq('rv').replace(/[^A-Za-z0-9]/g, '');

let app: FastifyInstance;
let app2: FastifyInstance;
let data: Dataset;
let adminId: string;
let flows: Awaited<ReturnType<typeof smartSessions>>;

beforeAll(async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  app = await buildApp(testConfig({ publicBaseUrl: base }));
  await app.listen({ port, host: '127.0.0.1' });
  app2 = await testApp({ publicBaseUrl: base });
  data = await seedDataset(app, tag);
  // The Patient resource in its own compartment (what the FHIR API stores; the DICOMweb seed leaves it out).
  await app.db.query(sql.unsafe`UPDATE patients SET patient_id = id WHERE id = ${data.A.id}`);
  adminId = await ensureUser(app, { username: 'test-admin', roles: ['admin'] });
  flows = await smartSessions(app, base, data.A.id, tag);
});
afterAll(async () => {
  await app2?.close();
  await app?.close();
});

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
    const id = await flows.doctor('rv-launch');
    const s = await flows.launch(`rv-launch-${tag}`);
    await expectReads(app, s.access, 200);
    await expectReads(app2, s.access, 200); // cached in the second process
    expect(await revokeGrant(app.db, id, data.A.id, adminId)).toBe(true);
    await invalidated(app, s.access);
    await expectReads(app, s.access, 401, /no longer has access/);
    await invalidated(app2, s.access);
    await expectReads(app2, s.access, 401, /no longer has access/);
    // Introspection agrees with the resource server.
    const intro = await request(app.server)
      .post('/auth/introspect')
      .set(bearer(await adminToken(app)))
      .type('form')
      .send({ token: s.access });
    expect(intro.body).toEqual({ active: false });
    // Logged and audited as any refused token: one AuditEvent, failed.
    const refused = await get(app, reads(s.access)[0]!);
    expect((await eventOf(app, refused)).outcome).not.toBe('0');

    const r = await flows.refresh(s.refresh);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/no longer/) });
    expect((await eventOf(app, r)).outcome).not.toBe('0');
  });

  test("the doctor's own user/ token loses the patient too (404 on read, as before)", async () => {
    const id = await flows.doctor('rv-user');
    const token = await tokenFor(app, { user: { username: `rv-user-${tag}`, roles: ['doctor'] }, scope: 'user/*.rs' });
    expect((await get(app, reads(token)[0]!)).status).toBe(200);
    await revokeGrant(app.db, id, data.A.id, adminId);
    await invalidated(app, token);
    expect((await get(app, reads(token)[0]!)).status).toBe(404);
  });

  test('a refused refresh does not consume the token: when the grant is back, the same token refreshes', async () => {
    const id = await flows.doctor('rv-regrant');
    const s = await flows.launch(`rv-regrant-${tag}`);
    await revokeGrant(app.db, id, data.A.id, adminId);
    expect((await flows.refresh(s.refresh)).body['error']).toBe('invalid_grant');
    await grantPatient(app, `rv-regrant-${tag}`, data.A.id);
    const again = await flows.refresh(s.refresh);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body['patient']).toBe(data.A.id);
  });

  test('a viewer token ends when its user loses the study', async () => {
    const username = `rv-viewer-${tag}`;
    const id = await flows.doctor('rv-viewer');
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
    const id = await flows.doctor('rv-deact');
    const s = await flows.launch(username);
    const confidential = await flows.launch(username, flows.CONFIDENTIAL);
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
    expect((await flows.refresh(s.refresh)).body['error']).toBe('invalid_grant');
    expect((await flows.refresh(confidential.refresh, await flows.assertion())).body['error']).toBe('invalid_grant');

    expect(await activateUser(app.db, id)).toBe(true);
    for (const t of access) {
      await invalidated(app, t);
      const res = await get(app, reads(t)[1]!);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/revoked/);
    }
    expect((await flows.refresh(s.refresh)).body['error']).toBe('invalid_grant');
    // A new session works again (once `iat`, whole seconds, can be later than the deactivation).
    await afterTokensNotBefore(id);
    const fresh = await flows.launch(username);
    expect((await get(app, reads(fresh.access)[1]!)).status).toBe(200);
  });
});

describe('a replayed authorization code ends the access token issued from it', () => {
  test('the first access token is refused in this process and in another one; the refresh token is dead', async () => {
    await flows.doctor('rv-replay');
    const s = await flows.launch(`rv-replay-${tag}`);
    const probe = reads(s.access)[0]!;
    expect((await get(app, probe)).status).toBe(200);
    expect((await get(app2, probe)).status).toBe(200); // cached in the second process
    expect(app2.authCallerCache.get(tokenKey(s.access))).toBeDefined();
    const replay = await flows.tokenRequest({
      grant_type: 'authorization_code',
      code: s.code,
      code_verifier: s.verifier,
      redirect_uri: REDIRECT,
      client_id: flows.PUBLIC,
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
    expect((await flows.refresh(s.refresh)).body['error']).toBe('invalid_grant');
  });

  test('two redemptions of one code at once: one answers tokens, the other revokes them', async () => {
    await flows.doctor('rv-race');
    const { code, verifier } = await flows.authorize(`rv-race-${tag}`);
    const answers = await Promise.all([flows.redeemCode(code, verifier), flows.redeemCode(code, verifier)]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 400]);
    const winner = answers.find((a) => a.status === 200)!;
    const loser = answers.find((a) => a.status === 400)!;
    expect(loser.body['error_description']).toMatch(/already used/);
    const res = await get(app, reads(winner.body['access_token']!)[0]!);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/token revoked/);
    expect((await flows.refresh(winner.body['refresh_token']!)).body['error']).toBe('invalid_grant');
  });

  test('a reused refresh token also ends the access tokens of its grant', async () => {
    await flows.doctor('rv-reuse');
    const s = await flows.launch(`rv-reuse-${tag}`);
    const rotated = await flows.refresh(s.refresh);
    expect(rotated.status).toBe(200);
    const newAccess = rotated.body['access_token']!;
    expect((await get(app, reads(newAccess)[0]!)).status).toBe(200);
    expect((await flows.refresh(s.refresh)).body['error']).toBe('invalid_grant');
    for (const t of [s.access, newAccess]) {
      const res = await get(app, reads(t)[0]!);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/token revoked/);
    }
  });

  test('expired denylist and issued-token rows are purged', async () => {
    await app.db.query(sql.unsafe`
      INSERT INTO revoked_tokens (jti, expires_at) VALUES (${`old-${tag}`}, now() - interval '1 day')`);
    await flows.doctor('rv-purge');
    const s = await flows.launch(`rv-purge-${tag}`);
    await flows.refresh(s.refresh);
    await flows.refresh(s.refresh); // a replay: revokes the family, which purges
    const left = await app.db.maybeOne(sql.unsafe`SELECT 1 AS x FROM revoked_tokens WHERE jti = ${`old-${tag}`}`);
    expect(left).toBeNull();
    const expired = await app.db.oneFirst(
      sql.unsafe`SELECT count(*)::int FROM issued_access_tokens WHERE expires_at < now()`,
    );
    expect(expired).toBe(0);
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
