/**
 * Changing a user's roles through the admin API on the real stack: admins only, bad input refused with nothing
 * changed, the change effective on the user's next request with the token they already hold, and audited.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { eventOf, userOf } from './helpers/audit.ts';
import { type Auth, type Booked, bookPatientAndOrder } from './e2e/helpers/ehr.ts';

let app: FastifyInstance;
let admin: Auth;
let doctor: Auth;
let auditor: Auth;
let carer: Auth;
let booked: Booked;

const URL = '/api/v1/admin/users/roles-carer/roles';
const put = (url: string, headers: Record<string, string>, payload?: unknown) =>
  app.inject({ method: 'PUT', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
const rolesOf = (username: string) =>
  app.db.oneFirst(sql.unsafe`SELECT roles FROM users WHERE username = ${username}`) as Promise<string[]>;

beforeAll(async () => {
  app = await testApp({ webDistDir: '/nonexistent/web-dist' });
  admin = bearer(await adminToken(app));
  booked = await bookPatientAndOrder(app, admin, 'Roles');
  doctor = bearer(
    await tokenFor(app, { user: { username: 'roles-doctor', roles: ['doctor'] }, scope: 'user/*.cruds' }),
  );
  auditor = bearer(
    await tokenFor(app, { user: { username: 'roles-auditor', roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
  carer = bearer(await tokenFor(app, { user: { username: 'roles-carer', roles: ['nurse'] }, scope: 'user/*.cruds' }));
  await grantPatient(app, 'roles-carer', booked.patientId);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

describe('PUT /api/v1/admin/users/{username}/roles', () => {
  test('401 without a token, 403 for a doctor and an auditor; nothing changes', async () => {
    expect((await put(URL, {}, { roles: ['admin'] })).statusCode).toBe(401);
    expect((await put(URL, doctor, { roles: ['admin'] })).statusCode).toBe(403);
    expect((await put(URL, auditor, { roles: ['admin'] })).statusCode).toBe(403);
    expect(await rolesOf('roles-carer')).toEqual(['nurse']);
  });

  test.each<[string, unknown]>([
    ['no roles', { roles: [] }],
    ['an unknown role', { roles: ['superuser'] }],
    ['a role twice', { roles: ['nurse', 'nurse'] }],
    ['no roles member', {}],
    ['an unknown member', { roles: ['doctor'], password: 'x' }],
    ['a string for the list', { roles: 'doctor,admin' }],
  ])('%s: 400 and nothing changes', async (_, body) => {
    const res = await put(URL, admin, body);
    expect(res.statusCode, res.body).toBe(400);
    expect(await rolesOf('roles-carer')).toEqual(['nurse']);
  });

  test('unknown user 404; an admin cannot take the admin role from themself (409)', async () => {
    expect((await put('/api/v1/admin/users/nobody/roles', admin, { roles: ['nurse'] })).statusCode).toBe(404);
    const self = await put('/api/v1/admin/users/test-admin/roles', admin, { roles: ['auditor'] });
    expect(self.statusCode).toBe(409);
    expect(await rolesOf('test-admin')).toContain('admin');
  });

  test('the patient role goes with a patient link: 422 both ways, nothing changes', async () => {
    const staff = await put(URL, admin, { roles: ['patient'] });
    expect(staff.statusCode, staff.body).toBe(422);
    expect(await rolesOf('roles-carer')).toEqual(['nurse']);
    const login = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/users',
      headers: admin,
      payload: {
        username: 'roles-patient',
        displayName: 'Roles Patient',
        roles: ['patient'],
        patient: booked.patientId,
      },
    });
    expect(login.statusCode, login.body).toBe(201);
    for (const roles of [['doctor'], ['patient', 'nurse']]) {
      const res = await put('/api/v1/admin/users/roles-patient/roles', admin, { roles });
      expect(res.statusCode, res.body).toBe(422);
    }
    expect(await rolesOf('roles-patient')).toEqual(['patient']);
  });

  test('an admin changes the roles: audited, and the token the user holds gets the new rights at once', async () => {
    const patient = `/fhir/Patient/${booked.patientId}`;
    expect((await app.inject({ method: 'GET', url: patient, headers: carer })).statusCode).toBe(200);

    const res = await put(URL, admin, { roles: ['auditor'] });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ username: 'roles-carer', roles: ['auditor'], previous: ['nurse'], changed: true });
    expect(await rolesOf('roles-carer')).toEqual(['auditor']);
    const event = await eventOf(app, res);
    expect(event.action).toBe('U');
    expect(event.outcome).toBe('0');
    expect(event.entity?.some((e) => e.what?.display === URL)).toBe(true);
    expect(userOf(event)?.who?.identifier?.value ?? userOf(event)?.who?.display).toBeTruthy();

    // The same token: now an auditor's, who reads no patient.
    const me = await app.inject({ method: 'GET', url: '/api/v1/me', headers: carer });
    expect((me.json() as { roles: string[] }).roles).toEqual(['auditor']);
    expect((await app.inject({ method: 'GET', url: patient, headers: carer })).statusCode).toBe(403);

    // Setting the same roles again changes nothing; back to nurse restores the access.
    expect((await put(URL, admin, { roles: ['auditor'] })).json()).toMatchObject({ changed: false });
    expect((await put(URL, admin, { roles: ['nurse', 'doctor'] })).json()).toMatchObject({ changed: true });
    expect((await app.inject({ method: 'GET', url: patient, headers: carer })).statusCode).toBe(200);
  });
});
