/**
 * Audit of FHIR interactions and denials against the real stack: each request leaves exactly one
 * stored AuditEvent with the right type, subtype, agent, patient entity and outcome; denials hold no data of the
 * patient denied; auditors search by patient and date range; AuditEvents are immutable; every event validates.
 */
import type { AuditEvent, Bundle, Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { searchAuditEvents } from '../src/audit/query.ts';
import { parseAuditSearch } from '../src/audit/search.ts';
import { testApp } from './helpers/app.ts';
import { clientOf, eventOf, patientsOf, queryOf, subtypeOf, userOf } from './helpers/audit.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';

let app: FastifyInstance;
let A: Patient;
let B: Patient;
const auth = {} as Record<'admin' | 'doctor' | 'auditor', { authorization: string }>;
const doctorName = uniq('audit-doc');
const practitionerId = uniq('pr').replace(/[^A-Za-z0-9.-]/g, '');

async function createPatient(family: string): Promise<Patient> {
  const res = await request(app.server)
    .post('/fhir/Patient')
    .set(auth.admin)
    .set('content-type', 'application/fhir+json')
    .send({ resourceType: 'Patient', name: [{ family, given: ['Audit'] }], birthDate: '1970-01-02' });
  expect(res.status, res.text).toBe(201);
  return res.body as Patient;
}

beforeAll(async () => {
  app = await testApp();
  auth.admin = bearer(await adminToken(app));
  A = await createPatient(uniq('AuditA'));
  B = await createPatient(uniq('AuditB'));
  auth.doctor = bearer(
    await tokenFor(app, { user: { username: doctorName, roles: ['doctor'], practitionerId }, scope: 'user/*.rs' }),
  );
  await grantPatient(app, doctorName, A.id as string);
  auth.auditor = bearer(
    await tokenFor(app, { user: { username: uniq('auditor'), roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
});

afterAll(async () => {
  await app?.close();
});

describe('allowed FHIR interactions', () => {
  test('a read: rest/read, the doctor as user, the client app, patient A, outcome 0', async () => {
    const res = await request(app.server).get(`/fhir/Patient/${A.id}`).set(auth.doctor);
    expect(res.status).toBe(200);
    const e = await eventOf(app, res);
    expect(e.type?.code).toBe('rest');
    expect(subtypeOf(e)).toEqual(['read']);
    expect(e.action).toBe('R');
    expect(e.outcome).toBe('0');
    expect(userOf(e)?.who?.reference).toBe(`Practitioner/${practitionerId}`);
    expect(userOf(e)?.policy?.[0]).toMatch(/^urn:ietf:params:oauth:jti:.+/);
    expect(clientOf(e)?.who?.identifier?.value).toBe('ehr-cli');
    expect(clientOf(e)?.network?.address).toBeTruthy();
    expect(patientsOf(e)).toEqual([`Patient/${A.id}`]);
    expect(e.entity?.some((x) => x.what?.reference === `Patient/${A.id}`)).toBe(true);
    expect(e.meta?.profile).toEqual([
      'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead',
    ]);
  });

  test('a search: rest/search-type with the raw query base64 and the patients returned', async () => {
    const res = await request(app.server).get(`/fhir/Patient?_id=${A.id}&_count=5`).set(auth.doctor);
    expect(res.status).toBe(200);
    const e = await eventOf(app, res);
    expect(subtypeOf(e)).toEqual(['search-type']);
    expect(e.action).toBe('E');
    expect(queryOf(e)).toBe(`Patient?_id=${A.id}&_count=5`);
    expect(patientsOf(e)).toEqual([`Patient/${A.id}`]);
  });

  test.each([
    ['update', 'PUT', 'U'],
    ['patch', 'PATCH', 'U'],
    ['delete', 'DELETE', 'D'],
  ])('a write (%s): action %s ... one event with the patient', async (interaction, method, action) => {
    const p = await createPatient(uniq('AuditW'));
    let req = request(app.server)
      [method.toLowerCase() as 'put' | 'patch' | 'delete'](`/fhir/Patient/${p.id}`)
      .set(auth.admin);
    if (method === 'PUT') req = req.set('content-type', 'application/fhir+json').send({ ...p, gender: 'other' });
    if (method === 'PATCH') {
      req = req
        .set('content-type', 'application/json-patch+json')
        .send([{ op: 'add', path: '/gender', value: 'male' }]);
    }
    const res = await req;
    expect(res.status, res.text).toBeLessThan(300);
    const e = await eventOf(app, res);
    expect(subtypeOf(e)).toEqual([interaction]);
    expect(e.action).toBe(action);
    expect(e.entity?.some((x) => x.what?.reference === `Patient/${p.id}`)).toBe(true);
  });
});

test('a write and its AuditEvent commit in the same database transaction', async () => {
  const res = await request(app.server)
    .post('/fhir/Patient')
    .set(auth.admin)
    .set('content-type', 'application/fhir+json')
    .send({ resourceType: 'Patient', name: [{ family: uniq('AuditTx') }] });
  expect(res.status).toBe(201);
  const e = await eventOf(app, res);
  expect(subtypeOf(e)).toEqual(['create']);
  expect(patientsOf(e)).toEqual([`Patient/${res.body.id}`]);
  const xid = (q: ReturnType<typeof sql.unsafe>) => app.db.oneFirst(q);
  const eventTx = await xid(sql.unsafe`SELECT xmin::text FROM audit_event WHERE id = ${e.id as string}`);
  const rowTx = await xid(sql.unsafe`SELECT xmin::text FROM patients WHERE id = ${res.body.id}`);
  expect(eventTx).toBe(rowTx);
});

test('a write whose transaction rolls back leaves one failure event and no success event', async () => {
  const res = await request(app.server)
    .put(`/fhir/Patient/${uniq('rb').replace(/[^A-Za-z0-9.-]/g, '')}`)
    .set(auth.admin)
    .set('content-type', 'application/fhir+json')
    .send({ resourceType: 'Patient', identifier: A.identifier });
  expect(res.status).toBeGreaterThanOrEqual(400);
  const e = await eventOf(app, res);
  expect(e.outcome).toBe('4');
  expect(subtypeOf(e)).toEqual(['update']);
});

describe("denials are recorded without the denied patient's data", () => {
  test('401 without a token: outcome 4, no user agent', async () => {
    const res = await request(app.server).get(`/fhir/Patient/${B.id}`);
    expect(res.status).toBe(401);
    const e = await eventOf(app, res);
    expect(e.outcome).toBe('4');
    expect(userOf(e)).toBeUndefined();
    expect(patientsOf(e)).toEqual([]);
  });

  test("404 hiding patient B from the doctor: outcome 4, no patient entity, none of B's data", async () => {
    const res = await request(app.server).get(`/fhir/Patient/${B.id}`).set(auth.doctor);
    expect(res.status).toBe(404);
    const e = await eventOf(app, res);
    expect(e.outcome).toBe('4');
    expect(subtypeOf(e)).toEqual(['read']);
    expect(userOf(e)?.who?.reference).toBe(`Practitioner/${practitionerId}`);
    expect(patientsOf(e)).toEqual([]);
    const json = JSON.stringify(e);
    const mrn = B.identifier?.[0]?.value as string;
    expect(json).not.toContain(mrn);
    expect(json).not.toContain(B.name?.[0]?.family as string);
  });

  test('403 for a write the scope does not grant: outcome 4, subtype create', async () => {
    const res = await request(app.server)
      .post('/fhir/Patient')
      .set(auth.doctor)
      .set('content-type', 'application/fhir+json')
      .send({ resourceType: 'Patient', name: [{ family: 'Nope' }] });
    expect(res.status).toBe(403);
    const e = await eventOf(app, res);
    expect(e.outcome).toBe('4');
    expect(subtypeOf(e)).toEqual(['create']);
    expect(JSON.stringify(e)).not.toContain('Nope');
  });

  test('a doctor may not read AuditEvents (403, recorded)', async () => {
    const res = await request(app.server).get('/fhir/AuditEvent').set(auth.doctor);
    expect(res.status).toBe(403);
    expect((await eventOf(app, res)).outcome).toBe('4');
  });
});

describe('FHIR /fhir/AuditEvent for auditors', () => {
  test('search by patient and date range, newest first, paging', async () => {
    const start = new Date().toISOString();
    const reads = [];
    for (let i = 0; i < 3; i++) reads.push(await request(app.server).get(`/fhir/Patient/${A.id}`).set(auth.doctor));
    const end = new Date(Date.now() + 1).toISOString();
    const q = `patient=${A.id}&date=ge${start}&date=lt${end}&subtype=read&_sort=-date&_count=2`;
    const res = await request(app.server).get(`/fhir/AuditEvent?${q}`).set(auth.auditor);
    expect(res.status, res.text).toBe(200);
    const bundle = res.body as Bundle<AuditEvent>;
    expect(bundle.total).toBe(3);
    expect(bundle.entry).toHaveLength(2);
    const ids = reads.map((r) => String(r.headers['x-request-id'])).reverse();
    const reqIdOf = (e?: AuditEvent) => e?.entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value;
    expect(bundle.entry?.map((x) => reqIdOf(x.resource))).toEqual(ids.slice(0, 2));
    const next = bundle.link?.find((l) => l.relation === 'next')?.url as string;
    const page2 = await request(app.server)
      .get(new URL(next).pathname + new URL(next).search)
      .set(auth.auditor);
    expect(page2.body.entry.map((x: { resource: AuditEvent }) => reqIdOf(x.resource))).toEqual(ids.slice(2));

    const before = await request(app.server)
      .get(`/fhir/AuditEvent?patient=Patient/${A.id}&date=lt${start}&subtype=read&agent=Practitioner/${practitionerId}`)
      .set(auth.auditor);
    expect(before.status).toBe(200);
    for (const x of before.body.entry ?? []) expect(Date.parse(x.resource.recorded)).toBeLessThan(Date.parse(start));

    const one = bundle.entry?.[0]?.resource as AuditEvent;
    const read = await request(app.server).get(`/fhir/AuditEvent/${one.id}`).set(auth.auditor);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(one);
  });

  test.each([
    ['type', 'http://terminology.hl7.org/CodeSystem/audit-event-type|rest'],
    ['action', 'R'],
    ['outcome', '4'],
    ['entity', 'Patient/__none__'],
  ])('search by %s=%s returns only matching events', async (param, value) => {
    const res = await request(app.server)
      .get(`/fhir/AuditEvent?${param}=${encodeURIComponent(value)}&_count=50`)
      .set(auth.auditor);
    expect(res.status, res.text).toBe(200);
    for (const { resource: e } of res.body.entry ?? []) {
      if (param === 'type') expect(e.type.code).toBe('rest');
      if (param === 'action') expect(e.action).toBe('R');
      if (param === 'outcome') expect(e.outcome).toBe('4');
    }
    if (param === 'entity') expect(res.body.total).toBe(0);
    else expect(res.body.total).toBeGreaterThan(0);
  });

  test('unknown parameters are a 400 OperationOutcome', async () => {
    const res = await request(app.server).get('/fhir/AuditEvent?colour=red').set(auth.auditor);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  test.each(['PUT', 'PATCH', 'DELETE'])('%s on an AuditEvent is 405 and changes nothing', async (method) => {
    const list = await request(app.server).get('/fhir/AuditEvent?_count=1').set(auth.auditor);
    const target = list.body.entry[0].resource as AuditEvent;
    const res = await request(app.server)
      [method.toLowerCase() as 'put'](`/fhir/AuditEvent/${target.id}`)
      .set(auth.admin)
      .set('content-type', 'application/fhir+json')
      .send({ ...target, outcome: '8' });
    expect(res.status).toBe(405);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const again = await request(app.server).get(`/fhir/AuditEvent/${target.id}`).set(auth.auditor);
    expect(again.body).toEqual(target);
  });
});

describe('patient visibility (query layer)', () => {
  test("patient A's scope sees only events about A; B's sees none of A's", async () => {
    await request(app.server).get(`/fhir/Patient/${A.id}`).set(auth.doctor);
    const all = parseAuditSearch([['_count', '100']]);
    const forA = await searchAuditEvents(app.db, all, { kind: 'patients', patientIds: [A.id as string] });
    expect(forA.total).toBeGreaterThan(0);
    for (const e of forA.events) expect(patientsOf(e)).toContain(`Patient/${A.id}`);
    const forB = await searchAuditEvents(app.db, all, { kind: 'patients', patientIds: [B.id as string] });
    for (const e of forB.events) expect(patientsOf(e)).not.toContain(`Patient/${A.id}`);
    expect(forB.events.some((e) => patientsOf(e).includes(`Patient/${B.id}`))).toBe(true);
  });
});

describe('patient visibility over HTTP (patient/AuditEvent.rs)', () => {
  const patientToken = async (patient: Patient, scope: string) =>
    bearer(await tokenFor(app, { user: { username: uniq('patient-user'), roles: [] }, scope, patient: patient.id }));
  const eventsOf = (body: Bundle): AuditEvent[] => (body.entry ?? []).map((e) => e.resource as AuditEvent);

  test("patient A's token sees only events about A; B's token sees none of A's", async () => {
    expect((await request(app.server).get(`/fhir/Patient/${A.id}`).set(auth.doctor)).status).toBe(200);
    const scope = 'launch/patient patient/*.rs patient/AuditEvent.rs';

    const forA = await request(app.server)
      .get('/fhir/AuditEvent?_count=100')
      .set(await patientToken(A, scope));
    expect(forA.status, forA.text).toBe(200);
    const eventsA = eventsOf(forA.body as Bundle);
    expect(eventsA.length).toBeGreaterThan(0);
    for (const e of eventsA) expect(patientsOf(e)).toContain(`Patient/${A.id}`);
    expect(eventsA.some((e) => JSON.stringify(e).includes(practitionerId))).toBe(true);

    const forB = await request(app.server)
      .get('/fhir/AuditEvent?_count=100')
      .set(await patientToken(B, scope));
    expect(forB.status, forB.text).toBe(200);
    for (const e of eventsOf(forB.body as Bundle)) expect(patientsOf(e)).not.toContain(`Patient/${A.id}`);
    expect(forB.text).not.toContain(A.id as string);
  });

  test('patient/*.rs alone does not reach AuditEvent, and a patient cannot write one', async () => {
    const plain = await patientToken(A, 'launch/patient patient/*.rs');
    expect((await request(app.server).get('/fhir/AuditEvent').set(plain)).status).toBe(403);
    const withAudit = await patientToken(A, 'launch/patient patient/AuditEvent.cruds');
    const del = await request(app.server).delete('/fhir/AuditEvent/anything').set(withAudit);
    expect([403, 405]).toContain(del.status);
  });
});
