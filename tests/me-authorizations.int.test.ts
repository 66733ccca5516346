/**
 * The user's connected apps (`/api/v1/me/authorizations`), behind SMART App Launch 2.x `management_endpoint`: a user
 * who launched an app through the real authorize and token endpoints sees that grant (and not another user's), and
 * revoking it ends both its access token (401 at /fhir) and its refresh token (invalid_grant). Another user's grant id
 * is answered 404 and nothing changes. Every call is audited.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { eventsOf } from './helpers/audit.ts';
import { bearer, tokenFor } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';
import { smartSessions } from './helpers/smart-session.ts';

const tag = uniq('ma').replace(/[^A-Za-z0-9]/g, '');
const PATIENT = `ma-pat-${tag}`;

let app: FastifyInstance;
let base: string;
let flows: Awaited<ReturnType<typeof smartSessions>>;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await buildApp(testConfig({ publicBaseUrl: base }));
  await app.listen({ port, host: '127.0.0.1' });
  await app.db.query(sql.unsafe`
    INSERT INTO patients (id, version_id, last_updated, content, patient_id)
    VALUES (${PATIENT}, 1, now(), ${sql.jsonb({ resourceType: 'Patient', id: PATIENT })}, ${PATIENT})`);
  flows = await smartSessions(app, base, PATIENT, tag);
});
afterAll(async () => {
  await app?.close();
});

interface Grant {
  grantId: string;
  clientId: string;
  clientName: string;
  scope: string;
  patient: string | null;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  current: boolean;
}

const list = async (token: string): Promise<Grant[]> => {
  const res = await request(app.server).get('/api/v1/me/authorizations').set(bearer(token));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body as { items: Grant[] }).items;
};
const readPatient = (token: string) => request(app.server).get(`/fhir/Patient/${PATIENT}`).set(bearer(token));

describe('GET and DELETE /api/v1/me/authorizations', () => {
  test('lists the own grant only; revoking it ends its access and refresh tokens', async () => {
    await flows.doctor('ma-a');
    await flows.doctor('ma-b');
    const a = await flows.launch(`ma-a-${tag}`);
    const b = await flows.launch(`ma-b-${tag}`);

    const mine = await list(a.access);
    expect(mine).toHaveLength(1);
    const g = mine[0]!;
    expect(g).toMatchObject({ clientId: flows.PUBLIC, clientName: flows.PUBLIC, patient: PATIENT, current: true });
    expect(g.scope).toContain('patient/*.rs');
    for (const t of [g.createdAt, g.lastUsedAt, g.expiresAt]) expect(Number.isNaN(Date.parse(t))).toBe(false);
    expect(Date.parse(g.expiresAt)).toBeGreaterThan(Date.now());
    const theirs = await list(b.access);
    expect(theirs).toHaveLength(1);
    expect(theirs[0]!.grantId).not.toBe(g.grantId);

    // Another user's grant: 404, and it keeps working.
    const foreign = await request(app.server)
      .delete(`/api/v1/me/authorizations/${theirs[0]!.grantId}`)
      .set(bearer(a.access));
    expect(foreign.status).toBe(404);
    expect((await readPatient(b.access)).status).toBe(200);
    expect(await list(b.access)).toHaveLength(1);

    const revoked = await request(app.server).delete(`/api/v1/me/authorizations/${g.grantId}`).set(bearer(a.access));
    expect(revoked.status).toBe(204);
    expect(await eventsOf(app, String(revoked.headers['x-request-id']))).toHaveLength(1);
    expect((await readPatient(a.access)).status).toBe(401);
    const refreshed = await flows.refresh(a.refresh);
    expect(refreshed.status).toBe(400);
    expect(refreshed.body['error']).toBe('invalid_grant');

    // The other user's grant is untouched; a second launch of the first user is a new, listed grant.
    expect((await readPatient(b.access)).status).toBe(200);
    expect((await flows.refresh(b.refresh)).status).toBe(200);
    const again = await flows.launch(`ma-a-${tag}`);
    const now = await list(again.access);
    expect(now.map((x) => x.grantId)).not.toContain(g.grantId);
    expect(now).toHaveLength(1);
  });

  test('an unknown, ended or malformed grant id: 404 or 400, never 5xx', async () => {
    await flows.doctor('ma-c');
    const c = await flows.launch(`ma-c-${tag}`);
    for (const id of [crypto.randomUUID(), 'not-a-uuid']) {
      const res = await request(app.server).delete(`/api/v1/me/authorizations/${id}`).set(bearer(c.access));
      expect(res.status).toBe(404);
    }
    const bad = await request(app.server).delete('/api/v1/me/authorizations/a%20b').set(bearer(c.access));
    expect(bad.status).toBe(400);
    expect(await list(c.access)).toHaveLength(1);
  });

  test('without a token 401; a token not issued by the built-in server to a user 403; all audited', async () => {
    const none = await request(app.server).get('/api/v1/me/authorizations');
    expect(none.status).toBe(401);
    const backend = await tokenFor(app, {
      client: { clientId: `ma-backend-${tag}`, kind: 'backend', scope: 'system/*.rs' },
    });
    const denied = await request(app.server).get('/api/v1/me/authorizations').set(bearer(backend));
    expect(denied.status).toBe(403);
    expect(await eventsOf(app, String(denied.headers['x-request-id']))).toHaveLength(1);
  });
});
