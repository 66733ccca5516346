/**
 * Patient logins on the real stack: the admin API makes one (role `patient` alone, naming an existing Patient that has
 * no login yet) and refuses every other shape with nothing written; the login's token (as the authorization server and
 * `bin/ehr token` issue it) has its own Patient as context, `fhirUser` Patient/{id} and read-only patient/ scopes.
 */
import { spawnSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { mintLocalToken } from '../src/auth/local-token.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer } from './helpers/auth.ts';
import { type Auth, type Booked, bookPatientAndOrder } from './e2e/helpers/ehr.ts';

let app: FastifyInstance;
let admin: Auth;
let ada: Booked;
let bob: Booked;

beforeAll(async () => {
  app = await testApp();
  admin = bearer(await adminToken(app));
  ada = await bookPatientAndOrder(app, admin, 'Loginada');
  bob = await bookPatientAndOrder(app, admin, 'Loginbob');
}, 60_000);

afterAll(async () => {
  await app?.close();
});

const addUser = (payload: object) =>
  app.inject({ method: 'POST', url: '/api/v1/admin/users', headers: admin, payload });
const exists = async (username: string) =>
  (await app.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM users WHERE username = ${username}`)) === 1;

describe('the admin API', () => {
  test('makes a patient login for an existing patient, listed with its patient', async () => {
    const res = await addUser({
      username: 'login-ada',
      displayName: 'Ada',
      roles: ['patient'],
      patient: ada.patientId,
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ username: 'login-ada', roles: ['patient'], patient: ada.patientId });
    const users = (await app.inject({ method: 'GET', url: '/api/v1/admin/users', headers: admin })).json() as {
      items: { username: string; patient: string | null }[];
    };
    expect(users.items.find((u) => u.username === 'login-ada')?.patient).toBe(ada.patientId);
  });

  test.each([
    ['patient and another role', { roles: ['patient', 'doctor'], patient: 'ADA' }, 400],
    ['patient role without a patient', { roles: ['patient'] }, 400],
    ['a patient without the role', { roles: ['nurse'], patient: 'ADA' }, 400],
    ['a practitioner for a patient login', { roles: ['patient'], patient: 'ADA', practitionerId: 'pr-1' }, 400],
    ['an unknown patient', { roles: ['patient'], patient: 'no-such-patient' }, 422],
    ['a second login for the same patient', { roles: ['patient'], patient: 'ADA' }, 409],
  ])('%s: %s and nothing written', async (name, body, status) => {
    const username = `login-bad-${name.replace(/\W+/g, '-')}`.slice(0, 60);
    const payload = {
      username,
      displayName: 'X',
      ...body,
      ...('patient' in body && body.patient === 'ADA' ? { patient: ada.patientId } : {}),
    };
    const res = await addUser(payload);
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toBeTruthy();
    expect(await exists(username)).toBe(false);
  });
});

/** `bin/ehr` against the throwaway database (as tests/auth-cli.int.test.ts runs it). */
function ehr(args: string[]) {
  const stack = inject('stack');
  const res = spawnSync('bin/ehr', args, {
    env: {
      PATH: process.env['PATH'],
      EHR_ENV_FILE: '/dev/null',
      EHR_STACK_DIR: '/nonexistent',
      EHR_DATABASE_URL: stack.databaseUrl,
      EHR_ORTHANC_PASSWORD: stack.orthancPassword,
    },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

describe('bin/ehr user add', () => {
  test('--role patient --patient ID makes a patient login; the other shapes are refused', async () => {
    const ok = ehr(['user', 'add', 'cli-bob', '--role', 'patient', '--patient', bob.patientId]);
    expect(ok.code, ok.err).toBe(0);
    const row = await app.db.one(sql.unsafe`SELECT roles, patient_id FROM users WHERE username = 'cli-bob'`);
    expect(row).toEqual({ roles: ['patient'], patient_id: bob.patientId });
    for (const args of [
      ['--role', 'patient'],
      ['--role', 'patient', '--patient', 'no-such-patient'],
      ['--role', 'doctor', '--patient', bob.patientId],
      ['--role', 'patient', '--role', 'nurse', '--patient', bob.patientId],
    ]) {
      const bad = ehr(['user', 'add', 'cli-bad', ...args]);
      expect(bad.code, args.join(' ')).not.toBe(0);
      expect(await exists('cli-bad')).toBe(false);
    }
  });
});

describe('the token of a patient login', () => {
  test('its own Patient as context, fhirUser Patient, read-only patient/ scopes', async () => {
    const minted = await mintLocalToken(app.db, app.authMint, {
      username: 'login-ada',
      scope: 'openid fhirUser user/*.cruds user/AuditEvent.rs',
    });
    const me = (await app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(minted.token) })).json();
    expect(me).toMatchObject({
      kind: 'patient',
      roles: ['patient'],
      patient: ada.patientId,
      fhirUser: `Patient/${ada.patientId}`,
    });
    expect(me.scopes).toEqual(['patient/*.rs', 'patient/AuditEvent.rs', 'openid', 'fhirUser']);
    const own = await app.inject({
      method: 'GET',
      url: `/fhir/Patient/${ada.patientId}`,
      headers: bearer(minted.token),
    });
    expect(own.statusCode).toBe(200);
    const other = await app.inject({
      method: 'GET',
      url: `/fhir/Patient/${bob.patientId}`,
      headers: bearer(minted.token),
    });
    expect(other.statusCode).toBe(404);
    const orders = await app.inject({ method: 'GET', url: '/fhir/ServiceRequest', headers: bearer(minted.token) });
    expect(orders.json().entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([ada.orderId]);
  });

  test('the viewer link of its own order, not of another patient', async () => {
    const minted = await mintLocalToken(app.db, app.authMint, { username: 'login-ada', scope: 'user/*.rs' });
    const own = await app.inject({
      method: 'GET',
      url: `/api/v1/dicom/viewer-url/${ada.orderId}`,
      headers: bearer(minted.token),
    });
    // No study uploaded for the order: the link is refused for that reason only (409), not as forbidden.
    expect(own.statusCode).toBe(409);
    const other = await app.inject({
      method: 'GET',
      url: `/api/v1/dicom/viewer-url/${bob.orderId}`,
      headers: bearer(minted.token),
    });
    expect(other.statusCode).toBe(404);
  });
});
