import type { Bundle, Patient, ServiceRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bundleResources, expectValid, type FhirTestServer, fhirServer, uniq } from './helpers/fhir.ts';

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
