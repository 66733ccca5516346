/**
 * The web app's API on the real stack: /api/v1/me, the admin API over users (add, deactivate, activate), grants and
 * clients (list, register, change) (admins only, deny by default, bad input refused with nothing changed), an order's upload log (only for callers who may read the
 * order), and /app/ when the app is not built.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { eventOf, userOf } from './helpers/audit.ts';
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

const call = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  headers: Record<string, string>,
  payload?: object,
) => app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

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
    ['POST', '/api/v1/admin/users/api-doctor/deactivate'],
    ['POST', '/api/v1/admin/users/api-doctor/activate'],
    ['POST', '/api/v1/admin/clients'],
    ['PATCH', '/api/v1/admin/clients/ehr-web'],
  ] as const)('%s %s: 401 without a token, 403 for a doctor and an auditor', async (method, url) => {
    const body = method === 'POST' || method === 'PATCH' ? {} : undefined;
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

describe('/api/v1/admin: deactivating users', () => {
  const active = (username: string) =>
    app.db.oneFirst(sql.unsafe`SELECT active FROM users WHERE username = ${username}`);

  test('an admin deactivates a user (their token then gets 401) and activates them (the old token stays dead)', async () => {
    const leaver = bearer(
      await tokenFor(app, { user: { username: 'api-leaver', roles: ['nurse'] }, scope: 'user/*.rs' }),
    );
    expect((await call('GET', '/api/v1/me', leaver)).statusCode).toBe(200);
    const res = await call('POST', '/api/v1/admin/users/api-leaver/deactivate', admin);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ username: 'api-leaver', active: false, changed: true });
    const event = await eventOf(app, res);
    expect(userOf(event)?.who?.identifier?.value ?? userOf(event)?.who?.display).toBeTruthy();
    expect(await active('api-leaver')).toBe(false);
    expect((await call('GET', '/api/v1/me', leaver)).statusCode).toBe(401);
    expect((await call('POST', '/api/v1/admin/users/api-leaver/deactivate', admin)).json()).toMatchObject({
      changed: false,
    });
    const back = await call('POST', '/api/v1/admin/users/api-leaver/activate', admin);
    expect(back.json()).toEqual({ username: 'api-leaver', active: true, changed: true });
    expect(await active('api-leaver')).toBe(true);
    expect((await call('GET', '/api/v1/me', leaver)).statusCode).toBe(401);
  });

  test('unknown user 404; an admin cannot deactivate themself (409); a body is a 400; nothing changes', async () => {
    expect((await call('POST', '/api/v1/admin/users/nobody/deactivate', admin)).statusCode).toBe(404);
    expect((await call('POST', '/api/v1/admin/users/test-admin/deactivate', admin)).statusCode).toBe(409);
    expect(await active('test-admin')).toBe(true);
    const withBody = await call('POST', '/api/v1/admin/users/api-doctor/deactivate', admin, { reason: 'left' });
    expect(withBody.statusCode).toBe(400);
    expect(await active('api-doctor')).toBe(true);
    expect((await call('GET', '/api/v1/me', doctor)).statusCode).toBe(200);
  });
});

describe('/api/v1/admin/clients: register and change', () => {
  const rows = () =>
    app.db.any(sql.unsafe`
      SELECT client_id, name, kind, redirect_uris, jwks, jwks_uri, scope_ceiling, allowed_patients, active
      FROM oauth_clients ORDER BY client_id`);
  const KEY = {
    kty: 'EC',
    crv: 'P-256',
    x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
    y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
  };

  test('an admin registers a public, a confidential and a backend client, and changes one', async () => {
    const pub = await call('POST', '/api/v1/admin/clients', admin, {
      clientId: 'api-portal',
      name: 'Portal',
      kind: 'public',
      redirectUris: ['https://portal.example/cb'],
      scopeCeiling: 'openid fhirUser patient/*.rs',
    });
    expect(pub.statusCode, pub.body).toBe(201);
    expect(await eventOf(app, pub)).toBeTruthy();
    expect(
      (
        await call('POST', '/api/v1/admin/clients', admin, {
          clientId: 'api-ris',
          kind: 'confidential',
          redirectUris: ['https://ris.example/cb'],
          jwks: { keys: [KEY] },
          scopeCeiling: 'openid user/*.rs',
        })
      ).statusCode,
    ).toBe(201);
    expect(
      (
        await call('POST', '/api/v1/admin/clients', admin, {
          clientId: 'api-etl',
          kind: 'backend',
          jwksUri: 'https://etl.example/jwks',
          scopeCeiling: 'system/Patient.rs',
          allowedPatients: [granted.patientId],
        })
      ).statusCode,
    ).toBe(201);
    const dup = await call('POST', '/api/v1/admin/clients', admin, {
      clientId: 'api-portal',
      kind: 'public',
      redirectUris: ['https://other.example/cb'],
      scopeCeiling: 'openid',
    });
    expect(dup.statusCode).toBe(409);
    const changed = await call('PATCH', '/api/v1/admin/clients/api-portal', admin, {
      scopeCeiling: 'openid patient/Patient.rs',
      redirectUris: ['https://portal.example/cb', 'http://localhost:5173/cb'],
      active: false,
    });
    expect(changed.statusCode, changed.body).toBe(200);
    const list = (await call('GET', '/api/v1/admin/clients', admin)).json() as {
      items: { clientId: string; kind: string; active: boolean; scopeCeiling: string; redirectUris: string[] }[];
    };
    expect(list.items.find((c) => c.clientId === 'api-portal')).toMatchObject({
      kind: 'public',
      active: false,
      scopeCeiling: 'openid patient/Patient.rs',
      redirectUris: ['https://portal.example/cb', 'http://localhost:5173/cb'],
    });
    expect(list.items.find((c) => c.clientId === 'api-etl')).toMatchObject({ kind: 'backend', active: true });
  });

  test.each<[string, 'POST' | 'PATCH', string, object]>([
    [
      'an unknown member',
      'POST',
      '',
      {
        clientId: 'api-x',
        kind: 'public',
        redirectUris: ['https://x.example/cb'],
        scopeCeiling: 'openid',
        secret: 's',
      },
    ],
    [
      'a string for a boolean',
      'POST',
      '',
      {
        clientId: 'api-x',
        kind: 'public',
        redirectUris: ['https://x.example/cb'],
        scopeCeiling: 'openid',
        active: 'true',
      },
    ],
    [
      'an unknown kind',
      'POST',
      '',
      { clientId: 'api-x', kind: 'trusted', redirectUris: ['https://x.example/cb'], scopeCeiling: 'openid' },
    ],
    [
      'an http redirect',
      'POST',
      '',
      { clientId: 'api-x', kind: 'public', redirectUris: ['http://x.example/cb'], scopeCeiling: 'openid' },
    ],
    ['no redirect', 'POST', '', { clientId: 'api-x', kind: 'public', scopeCeiling: 'openid' }],
    [
      'an unknown scope',
      'POST',
      '',
      { clientId: 'api-x', kind: 'public', redirectUris: ['https://x.example/cb'], scopeCeiling: 'openid user/*.zz' },
    ],
    [
      'a confidential client without keys',
      'POST',
      '',
      { clientId: 'api-x', kind: 'confidential', redirectUris: ['https://x.example/cb'], scopeCeiling: 'openid' },
    ],
    [
      'private keys',
      'POST',
      '',
      { clientId: 'api-x', kind: 'backend', jwks: { keys: [{ ...KEY, d: 'secret' }] }, scopeCeiling: 'system/*.rs' },
    ],
    [
      'a bad client id',
      'POST',
      '',
      { clientId: 'a b', kind: 'public', redirectUris: ['https://x.example/cb'], scopeCeiling: 'openid' },
    ],
    ['a changed client id', 'PATCH', 'ehr-web', { clientId: 'other' }],
    ['an unknown member', 'PATCH', 'ehr-web', { active: false, extra: 1 }],
    ['a number for redirect URIs', 'PATCH', 'ehr-web', { redirectUris: 5 }],
    ['public to confidential without keys', 'PATCH', 'ehr-web', { kind: 'confidential' }],
    ['an empty change', 'PATCH', 'ehr-web', {}],
    ['a redirect with a fragment', 'PATCH', 'ehr-web', { redirectUris: ['https://x.example/cb#f'], active: false }],
  ])('%s (%s): 400 and nothing changes', async (_name, method, id, body) => {
    const before = await rows();
    const res = await call(method, `/api/v1/admin/clients${id ? `/${id}` : ''}`, admin, body);
    expect(res.statusCode, res.body).toBe(400);
    expect(await rows()).toEqual(before);
  });

  test('changing an unknown client is a 404', async () => {
    expect((await call('PATCH', '/api/v1/admin/clients/nope', admin, { active: false })).statusCode).toBe(404);
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
