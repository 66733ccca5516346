import type { Bundle, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { testConfig } from './helpers/app.ts';
import { bundleResources, expectValid, type FhirTestServer, fhirServer, tokenAt, uniq } from './helpers/fhir.ts';

let s: FhirTestServer;
beforeAll(async () => {
  s = await fhirServer();
});
afterAll(async () => {
  await s.app.close();
});

describe('CRUD and history through fhir-kit-client', () => {
  test('create assigns id, version, MRN; read, vread, update, patch, history, delete', async () => {
    const family = uniq('Crud');
    const created = (await s.client.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient', name: [{ family, given: ['Ann'] }], gender: 'female', birthDate: '1980-05-06' },
    })) as unknown as Patient;
    expectValid(created);
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.meta?.versionId).toBe('1');
    const mrn = created.identifier?.find((i) => i.system === 'http://imaging-ehr.local/fhir/sid/mrn');
    expect(mrn?.value).toMatch(/^CLI-\d{4}-\d{5,}$/);

    const read = (await s.client.read({ resourceType: 'Patient', id: created.id as string })) as unknown as Patient;
    expect(read).toEqual(created);

    const updated = (await s.client.update({
      resourceType: 'Patient',
      id: created.id as string,
      body: { ...read, gender: 'other' },
    })) as unknown as Patient;
    expect(updated.meta?.versionId).toBe('2');
    expect(updated.gender).toBe('other');
    expect(updated.identifier).toEqual(created.identifier);

    const patched = (await s.client.patch({
      resourceType: 'Patient',
      id: created.id as string,
      jsonPatch: [{ op: 'replace', path: '/gender', value: 'male' }],
    })) as unknown as Patient;
    expect(patched.meta?.versionId).toBe('3');
    expect(patched.gender).toBe('male');

    const v1 = (await s.client.vread({
      resourceType: 'Patient',
      id: created.id as string,
      version: '1',
    })) as unknown as Patient;
    expect(v1.gender).toBe('female');

    const history = (await s.client.history({
      resourceType: 'Patient',
      id: created.id as string,
    })) as unknown as Bundle;
    expect(history.type).toBe('history');
    expect(history.entry?.map((e) => e.resource?.meta?.versionId)).toEqual(['3', '2', '1']);
    bundleResources(history);

    await s.client.delete({ resourceType: 'Patient', id: created.id as string });
    const gone = await request(s.app.server).get(`/fhir/Patient/${created.id}`).set(s.auth);
    expect(gone.status).toBe(410);
    expect(gone.body.resourceType).toBe('OperationOutcome');
    const after = (await s.client.history({ resourceType: 'Patient', id: created.id as string })) as unknown as Bundle;
    expect(after.entry?.[0]?.request?.method).toBe('DELETE');
    expect(after.entry?.[0]?.resource).toBeUndefined();
  });

  test('ServiceRequest gets an ACSN accession; search by it through the client', async () => {
    const patient = (await s.client.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient' },
    })) as unknown as Patient;
    const order = (await s.client.create({
      resourceType: 'ServiceRequest',
      body: {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        code: { coding: [{ system: 'http://loinc.org', code: '36643-5', display: 'XR Chest 2V' }] },
        subject: { reference: `Patient/${patient.id}` },
      },
    })) as unknown as ServiceRequest;
    expectValid(order);
    const acc = order.identifier?.find((i) => i.system === 'http://imaging-ehr.local/fhir/sid/accession');
    expect(acc?.value).toMatch(/^ACC-\d{4}-\d{5,}$/);
    expect(acc?.type?.coding?.[0]?.code).toBe('ACSN');
    const found = (await s.client.search({
      resourceType: 'ServiceRequest',
      searchParams: { identifier: `${acc?.system}|${acc?.value}` },
    })) as unknown as Bundle;
    expect(bundleResources(found).map((r) => r.id)).toEqual([order.id]);
    const byPatient = (await s.client.search({
      resourceType: 'ServiceRequest',
      searchParams: { patient: `Patient/${patient.id}`, _include: 'ServiceRequest:patient' },
    })) as unknown as Bundle;
    expect(byPatient.entry?.map((e) => [e.resource?.id, e.search?.mode])).toEqual([
      [order.id, 'match'],
      [patient.id, 'include'],
    ]);
  });

  test('headers: ETag, Last-Modified, Location, content type', async () => {
    const res = await request(s.app.server)
      .post('/fhir/Practitioner')
      .set(s.auth)
      .set('content-type', 'application/fhir+json')
      .send(JSON.stringify({ resourceType: 'Practitioner', name: [{ family: 'Who' }] }));
    expect(res.status).toBe(201);
    expect(res.headers['etag']).toBe('W/"1"');
    expect(res.headers['last-modified']).toMatch(/GMT$/);
    expect(res.headers['location']).toBe(`${s.base}/Practitioner/${res.body.id}/_history/1`);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    const read = await request(s.app.server)
      .get(`/fhir/Practitioner/${res.body.id}`)
      .set(s.auth)
      .set('accept', 'application/json');
    expect(read.status).toBe(200);
    expect(read.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(read.headers['etag']).toBe('W/"1"');
    const search = await request(s.app.server).get('/fhir/Practitioner?_count=1').set(s.auth);
    expect(search.headers['etag']).toMatch(/^W\/"/);
    expect(search.headers['last-modified']).toMatch(/GMT$/);
  });
});

describe('formats, preferences and unexpected errors', () => {
  test('Prefer: return=minimal, _pretty and _format=json', async () => {
    const res = await request(s.app.server)
      .post('/fhir/Practitioner')
      .set(s.auth)
      .set('prefer', 'return=minimal')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ resourceType: 'Practitioner' }));
    expect(res.status).toBe(201);
    expect(res.text).toBe('');
    expect(res.headers['location']).toMatch(/\/Practitioner\/[0-9a-f-]{36}\/_history\/1$/);
    const pretty = await request(s.app.server)
      .get(`${new URL(res.headers['location'] as string).pathname}?_pretty=true&_format=json`)
      .set(s.auth);
    expect(pretty.status).toBe(200);
    expect(pretty.text).toContain('\n  "resourceType": "Practitioner"');
  });

  test('a tampered paging cursor is a 400, not a database error', async () => {
    const cursor = Buffer.from(JSON.stringify(["2020' OR 1=1", 'x'])).toString('base64url');
    const res = await request(s.app.server).get(`/fhir/Patient?_sort=birthdate&_cursor=${cursor}`).set(s.auth);
    expect(res.status).toBe(400);
    const hist = await request(s.app.server).get(`/fhir/Patient/_history?_cursor=${cursor}`).set(s.auth);
    expect(hist.status).toBe(400);
  });

  test('an unexpected failure (a search table gone) is a generic 500 OperationOutcome with the request id, logged', async () => {
    const lines: string[] = [];
    const config = testConfig({ logLevel: 'error' });
    const app = await buildApp(config, { logStream: { write: (l: string) => lines.push(l) } });
    await app.ready();
    const token = await tokenAt(app, config, 'test-admin', ['admin'], 'user/*.cruds');
    await app.db.query(sql.unsafe`ALTER TABLE search_date RENAME TO search_date_moved_by_test`);
    let res: Awaited<ReturnType<typeof app.inject>>;
    try {
      res = await app.inject({
        method: 'GET',
        url: '/fhir/Patient?birthdate=2020',
        headers: { authorization: `Bearer ${token}`, 'x-request-id': 'req-500-test' },
      });
    } finally {
      await app.db.query(sql.unsafe`ALTER TABLE search_date_moved_by_test RENAME TO search_date`);
      await app.close();
    }
    expect(res.statusCode).toBe(500);
    const body = res.json();
    expect(body.resourceType).toBe('OperationOutcome');
    expect(body.issue[0].code).toBe('exception');
    expect(body.issue[0].diagnostics).toContain('req-500-test');
    expect(res.body).not.toMatch(/\n\s+at |node_modules|search_date|relation/i);
    expect(lines.join('')).toContain('req-500-test');
  });
});
