/**
 * The web app's API on the real stack: /api/v1/me, the admin API over users, grants and clients (admins only, deny
 * by default, bad input refused with nothing changed), an order's upload log (only for callers who may read the
 * order), and /app/ when the app is not built.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { ctSeries, newUid } from './e2e/helpers/ct-phantom.ts';
import { type Auth, type Booked, bookPatientAndOrder, stow } from './e2e/helpers/ehr.ts';

let app: FastifyInstance;
let admin: Auth;
let doctor: Auth;
let auditor: Auth;
let granted: Booked;
let other: Booked;

beforeAll(async () => {
  app = await testApp({ webDistDir: '/nonexistent/web-dist' });
  admin = bearer(await adminToken(app));
  granted = await bookPatientAndOrder(app, admin, 'Granted');
  other = await bookPatientAndOrder(app, admin, 'Other');
  doctor = bearer(
    await tokenFor(app, {
      user: { username: 'api-doctor', roles: ['doctor'], practitionerId: 'pr-api-doctor' },
      scope: 'user/*.cruds',
    }),
  );
  auditor = bearer(
    await tokenFor(app, { user: { username: 'api-auditor', roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/admin/users/api-doctor/grants',
    headers: admin,
    payload: { patient: granted.patientId, reason: 'attending' },
  });
  expect(res.statusCode).toBe(201);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>, payload?: object) =>
  app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

describe('/api/v1/me', () => {
  test('names the caller and its roles', async () => {
    const res = await call('GET', '/api/v1/me', doctor);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ kind: 'user', fhirUser: 'Practitioner/pr-api-doctor', roles: ['doctor'] });
  });
  test('401 without a token', async () => {
    expect((await call('GET', '/api/v1/me', {})).statusCode).toBe(401);
  });
});

describe('/api/v1/admin', () => {
  test.each([
    ['GET', '/api/v1/admin/users'],
    ['POST', '/api/v1/admin/users'],
    ['GET', '/api/v1/admin/clients'],
    ['GET', '/api/v1/admin/users/api-doctor/grants'],
    ['POST', '/api/v1/admin/users/api-doctor/grants'],
    ['DELETE', '/api/v1/admin/users/api-doctor/grants/x'],
  ] as const)('%s %s: 401 without a token, 403 for a doctor and an auditor', async (method, url) => {
    const body = method === 'POST' ? {} : undefined;
    expect((await call(method, url, {}, body)).statusCode).toBe(401);
    expect((await call(method, url, doctor, body)).statusCode).toBe(403);
    expect((await call(method, url, auditor, body)).statusCode).toBe(403);
  });

  test('an admin adds a user (initial password shown once), lists users and clients', async () => {
    const res = await call('POST', '/api/v1/admin/users', admin, {
      username: 'api-nurse',
      displayName: 'Nurse N',
      roles: ['nurse'],
    });
    expect(res.statusCode).toBe(201);
    expect((res.json() as { initialPassword: string }).initialPassword.length).toBeGreaterThanOrEqual(20);
    const again = await call('POST', '/api/v1/admin/users', admin, {
      username: 'api-nurse',
      displayName: 'N',
      roles: ['nurse'],
    });
    expect(again.statusCode).toBe(409);
    const users = (await call('GET', '/api/v1/admin/users', admin)).json() as {
      items: { username: string; roles: string[] }[];
    };
    expect(users.items.find((u) => u.username === 'api-nurse')?.roles).toEqual(['nurse']);
    const clients = (await call('GET', '/api/v1/admin/clients', admin)).json() as { items: { clientId: string }[] };
    expect(clients.items.map((c) => c.clientId)).toContain('ehr-web');
  });

  test.each([
    [{ username: 'x y', displayName: 'X', roles: ['nurse'] }],
    [{ username: 'api-bad-role', displayName: 'X', roles: ['superuser'] }],
    [{ username: 'api-no-role', displayName: 'X', roles: [] }],
    [{ username: 'api-extra', displayName: 'X', roles: ['nurse'], password: 'chosen-by-caller' }],
  ])('bad user %j: 400 and nothing created', async (body) => {
    const res = await call('POST', '/api/v1/admin/users', admin, body);
    expect(res.statusCode).toBe(400);
    const n = await app.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM users WHERE username = ${body.username}`);
    expect(n).toBe(0);
  });

  test('grants: add, list, revoke; unknown patient 422, unknown user 404, revoking twice 404', async () => {
    const url = '/api/v1/admin/users/api-nurse/grants';
    expect((await call('POST', url, admin, { patient: 'no-such-patient', reason: 'r' })).statusCode).toBe(422);
    expect(
      (await call('POST', '/api/v1/admin/users/nobody/grants', admin, { patient: other.patientId, reason: 'r' }))
        .statusCode,
    ).toBe(404);
    expect((await call('POST', url, admin, { patient: other.patientId, reason: 'covering' })).statusCode).toBe(201);
    const list = (await call('GET', url, admin)).json() as { items: { patient: string; reason: string }[] };
    expect(list.items).toEqual([
      expect.objectContaining({ patient: other.patientId, reason: 'covering', expiresAt: null }),
    ]);
    expect((list.items[0] as unknown as { grantedAt: string }).grantedAt).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:]{8}Z$/);
    expect((await call('DELETE', `${url}/${other.patientId}`, admin)).statusCode).toBe(204);
    expect((await call('DELETE', `${url}/${other.patientId}`, admin)).statusCode).toBe(404);
    expect(((await call('GET', url, admin)).json() as { items: unknown[] }).items).toEqual([]);
  });
});

describe('/api/v1/dicom/orders/{id}/uploads', () => {
  test("the order's upload log for a caller who may read it; 404 otherwise", async () => {
    const series = ctSeries({
      patientId: granted.mrn,
      patientName: `${granted.family}^Viewer`,
      studyInstanceUid: newUid(),
      accessionNumber: granted.accession,
      slices: 2,
      size: 32,
    });
    await stow(app, doctor, series.files);
    const res = await call('GET', `/api/v1/dicom/orders/${granted.orderId}/uploads`, doctor);
    expect(res.statusCode).toBe(200);
    const body = res.json() as {
      order: { numberOfImages: number; uploadedAt: string };
      items: { numberStored: number; status: string }[];
    };
    expect(body.order.numberOfImages).toBe(2);
    expect(body.order.uploadedAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(body.items).toEqual([expect.objectContaining({ numberStored: 2, status: 'success' })]);
    expect((await call('GET', `/api/v1/dicom/orders/${other.orderId}/uploads`, doctor)).statusCode).toBe(404);
    expect((await call('GET', '/api/v1/dicom/orders/nope/uploads', doctor)).statusCode).toBe(404);
    expect((await call('GET', `/api/v1/dicom/orders/${granted.orderId}/uploads`, auditor)).statusCode).toBe(403);
    expect((await call('GET', `/api/v1/dicom/orders/${granted.orderId}/uploads`, {})).statusCode).toBe(401);
  });
});

describe('/app/ without a build', () => {
  test('answers 503 saying how to build it, and the API is unaffected', async () => {
    const res = await call('GET', '/app/patients', {});
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('make up');
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  });

  test('a malformed path is a 400, never a 5xx', async () => {
    expect((await call('GET', '/app/%E0%A4%A', {})).statusCode).toBe(400);
  });
});
