/**
 * Batch and transaction Bundles, system search, Patient/$everything, `previous` links and `_include:iterate` /
 * `_include=*`, driven by fhir-kit-client (a client no one here wrote) against the real app and database.
 */
import type { Bundle, BundleEntry, Encounter, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { Client } from 'fhir-kit-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eventsOf, patientsOf, subtypeOf } from './helpers/audit.ts';
import { bundleResources, dbFingerprint, type FhirTestServer, fhirServer, tokenAt, uniq } from './helpers/fhir.ts';

const LOINC = 'http://loinc.org';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

let s: FhirTestServer;
beforeAll(async () => {
  s = await fhirServer();
});
afterAll(async () => {
  await s.app.close();
});

/** The FHIR tables' fingerprint without the MRN/accession sequences (a rolled-back transaction may use a number). */
async function tables(): Promise<string> {
  const { m: _m, a: _a, ...rest } = JSON.parse(await dbFingerprint(s.app)) as Record<string, number>;
  return JSON.stringify(rest);
}

/** Every error fhir-kit-client throws carries the server's response. */
async function failure(p: Promise<unknown>): Promise<{ status: number; data: { issue?: { diagnostics?: string }[] } }> {
  try {
    await p;
  } catch (err) {
    const e = err as { response?: { status: number; data: unknown } };
    if (e.response) return e.response as never;
    throw err;
  }
  throw new Error('expected a failure');
}

function transactionBody(family: string): Bundle {
  const patient = `urn:uuid:${crypto.randomUUID()}`;
  const encounter = `urn:uuid:${crypto.randomUUID()}`;
  const practitioner = `urn:uuid:${crypto.randomUUID()}`;
  // Entries that reference others come first: the server orders the writes itself.
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: `urn:uuid:${crypto.randomUUID()}`,
        resource: {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          code: { coding: [{ system: LOINC, code: '36643-5' }] },
          subject: { reference: patient },
          encounter: { reference: encounter },
          requester: { reference: practitioner },
        },
        request: { method: 'POST', url: 'ServiceRequest' },
      },
      {
        fullUrl: encounter,
        resource: {
          resourceType: 'Encounter',
          status: 'finished',
          class: { system: ACT, code: 'AMB' },
          subject: { reference: patient },
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        fullUrl: patient,
        resource: { resourceType: 'Patient', name: [{ family, given: ['Tx'] }], gender: 'female' },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        fullUrl: practitioner,
        resource: { resourceType: 'Practitioner', name: [{ family: `Dr ${family}` }] },
        request: { method: 'POST', url: 'Practitioner' },
      },
    ],
  } as Bundle;
}

const location = (e: BundleEntry | undefined) => e?.response?.location?.split('/_history')[0] ?? '';

describe('transaction (https://hl7.org/fhir/R4/http.html#transaction)', () => {
  test('fhir-kit-client: urn:uuid references are resolved, writes ordered, every entry 201', async () => {
    const family = uniq('Tx');
    const res = (await s.client.transaction({ body: transactionBody(family) as never })) as unknown as Bundle;
    expect(res.type).toBe('transaction-response');
    expect(res.entry?.map((e) => e.response?.status)).toEqual([
      '201 Created',
      '201 Created',
      '201 Created',
      '201 Created',
    ]);
    const [sr, enc, pat, pract] = (res.entry ?? []).map(location);
    expect(pat).toMatch(/^Patient\//);
    const order = (await s.client.read({
      resourceType: 'ServiceRequest',
      id: (sr ?? '').split('/')[1] as string,
    })) as unknown as ServiceRequest;
    expect(order.subject?.reference).toBe(pat);
    expect(order.encounter?.reference).toBe(enc);
    expect(order.requester?.reference).toBe(pract);
    const encounter = (await s.client.read({
      resourceType: 'Encounter',
      id: (enc ?? '').split('/')[1] as string,
    })) as unknown as Encounter;
    expect(encounter.subject?.reference).toBe(pat);
    bundleResources(res);
  });

  test('one AuditEvent per entry, in the request’s transaction, plus the request’s own', async () => {
    const res = await request(s.app.server)
      .post('/fhir')
      .set(s.auth)
      .send(transactionBody(uniq('TxAudit')));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const events = await eventsOf(s.app, String(res.headers['x-request-id']));
    const subtypes = events.map((e) => subtypeOf(e)?.[0]).sort();
    expect(subtypes).toEqual(['create', 'create', 'create', 'create', 'transaction']);
    const patient = location((res.body as Bundle).entry?.[2]);
    const created = events.filter((e) => subtypeOf(e)?.[0] === 'create');
    // The Patient, Encounter and ServiceRequest creates name the patient; the Practitioner's does not.
    expect(created.filter((e) => patientsOf(e).some((p) => p.endsWith(patient))).length).toBe(3);
  });

  test('atomic: a failing entry rolls back every other one, the error names the entry', async () => {
    const before = await tables();
    const body = transactionBody(uniq('TxFail'));
    (body.entry?.[1]?.resource as Encounter).serviceProvider = { reference: 'Organization/does-not-exist' };
    const res = await failure(s.client.transaction({ body: body as never }));
    expect([400, 422]).toContain(res.status);
    expect(res.data.issue?.[0]?.diagnostics).toMatch(/^Bundle\.entry\[1\]/);
    expect(await tables()).toBe(before);
  });

  test('a reference to a urn:uuid no entry has is a 400 and nothing is written', async () => {
    const before = await tables();
    const body = transactionBody(uniq('TxDangling'));
    (body.entry?.[1]?.resource as Encounter).subject = { reference: `urn:uuid:${crypto.randomUUID()}` };
    const res = await request(s.app.server).post('/fhir').set(s.auth).send(body);
    expect(res.status).toBe(400);
    expect(await tables()).toBe(before);
  });

  test('conditional create (ifNoneExist) maps the fullUrl to the existing resource', async () => {
    const value = uniq('cond');
    const sys = 'urn:test:cond';
    await s.client.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient', identifier: [{ system: sys, value }] },
    });
    const p = `urn:uuid:${crypto.randomUUID()}`;
    const res = (await s.client.transaction({
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: p,
            resource: { resourceType: 'Patient', identifier: [{ system: sys, value }] },
            request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${sys}|${value}` },
          },
          {
            resource: {
              resourceType: 'Encounter',
              status: 'planned',
              class: { system: ACT, code: 'AMB' },
              subject: { reference: p },
            },
            request: { method: 'POST', url: 'Encounter' },
          },
        ],
      } as never,
    })) as unknown as Bundle;
    expect(res.entry?.[0]?.response?.status).toBe('200 OK');
    const enc = res.entry?.[1]?.resource as Encounter;
    expect(enc.subject?.reference).toBe(location(res.entry?.[0]));
  });
});

describe('batch', () => {
  test('fhir-kit-client: each entry succeeds or fails on its own', async () => {
    const pat = (await s.client.create({
      resourceType: 'Patient',
      body: { resourceType: 'Patient', name: [{ family: uniq('Batch') }] },
    })) as unknown as Patient;
    const res = (await s.client.batch({
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Patient/${pat.id}` } },
          {
            resource: {
              resourceType: 'Encounter',
              status: 'planned',
              class: { code: 'AMB' },
              subject: { reference: 'Patient/nope' },
            },
            request: { method: 'POST', url: 'Encounter' },
          },
          { request: { method: 'GET', url: `Patient?_id=${pat.id}` } },
          { request: { method: 'GET', url: 'Patient/does-not-exist' } },
          { request: { method: 'DELETE', url: `Patient/${pat.id}` } },
        ],
      } as never,
    })) as unknown as Bundle;
    expect(res.type).toBe('batch-response');
    const statuses = res.entry?.map((e) => e.response?.status?.split(' ')[0]);
    expect(statuses?.[0]).toBe('200');
    expect(['400', '422']).toContain(statuses?.[1]);
    expect(res.entry?.[1]?.response?.outcome?.resourceType).toBe('OperationOutcome');
    expect(statuses?.slice(2)).toEqual(['200', '404', '204']);
    expect((res.entry?.[0]?.resource as Patient | undefined)?.id).toBe(pat.id);
    expect((res.entry?.[2]?.resource as Bundle | undefined)?.entry?.[0]?.resource?.id).toBe(pat.id);
  });

  test('each entry has its own AuditEvent, failures included; without a token the batch is a 401', async () => {
    const res = await request(s.app.server)
      .post('/fhir')
      .set(s.auth)
      .send({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: 'Patient?_count=1' } },
          { request: { method: 'GET', url: 'Patient/does-not-exist' } },
          {
            resource: { resourceType: 'Practitioner', name: [{ family: uniq('B') }] },
            request: { method: 'POST', url: 'Practitioner' },
          },
        ],
      });
    expect(res.status).toBe(200);
    const events = await eventsOf(s.app, String(res.headers['x-request-id']));
    expect(events.map((e) => `${subtypeOf(e)?.[0]}:${e.outcome}`).sort()).toEqual([
      'batch:0',
      'create:0',
      'read:4',
      'search-type:0',
    ]);
    const anonymous = await request(s.app.server)
      .post('/fhir')
      .send({ resourceType: 'Bundle', type: 'batch', entry: [] });
    expect(anonymous.status).toBe(401);
  });

  test('a conditional create (ifNoneExist) in a batch finds the existing resource', async () => {
    const value = uniq('batch-cond');
    const body = { resourceType: 'Patient', identifier: [{ system: 'urn:test:cond', value }] };
    const entry = {
      resource: body,
      request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:test:cond|${value}` },
    };
    const first = (await s.client.batch({
      body: { resourceType: 'Bundle', type: 'batch', entry: [entry] } as never,
    })) as unknown as Bundle;
    const again = (await s.client.batch({
      body: { resourceType: 'Bundle', type: 'batch', entry: [entry] } as never,
    })) as unknown as Bundle;
    expect(first.entry?.[0]?.response?.status).toBe('201 Created');
    expect(again.entry?.[0]?.response?.status).toBe('200 OK');
    expect(location(again.entry?.[0])).toBe(location(first.entry?.[0]));
  });

  test('the access policy is applied per entry', async () => {
    const token = await tokenAt(s.app, {} as never, uniq('readonly'), ['admin'], 'user/Patient.rs');
    const client = new Client({ baseUrl: s.base, bearerToken: token });
    const res = (await client.batch({
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: 'Patient?_count=1' } },
          {
            resource: { resourceType: 'Practitioner', name: [{ family: 'X' }] },
            request: { method: 'POST', url: 'Practitioner' },
          },
          { request: { method: 'GET', url: 'Encounter?_count=1' } },
        ],
      } as never,
    })) as unknown as Bundle;
    expect(res.entry?.map((e) => e.response?.status?.split(' ')[0])).toEqual(['200', '403', '403']);
  });

  test.each([
    [{ resourceType: 'Patient' }],
    [{ resourceType: 'Bundle', type: 'collection' }],
    [{ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET' } }] }],
    [{ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'POST', url: 'Patient' } }] }],
    [{ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Unknown/1' } }] }],
  ])('%j is a 400', async (body) => {
    const res = await request(s.app.server).post('/fhir').set(s.auth).send(body);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('paging, system search, $everything, includes', () => {
  let ids: { patient: string; order: string; encounter: string; practitioner: string; study: string };
  const family = uniq('Everything');
  beforeAll(async () => {
    const tx = (await s.client.transaction({ body: transactionBody(family) as never })) as unknown as Bundle;
    const [sr, enc, pat, pract] = (tx.entry ?? []).map((e) => location(e).split('/')[1] as string);
    const study = (await s.client.create({
      resourceType: 'ImagingStudy',
      body: {
        resourceType: 'ImagingStudy',
        status: 'available',
        subject: { reference: `Patient/${pat}` },
        basedOn: [{ reference: `ServiceRequest/${sr}` }],
        identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.7${Date.now()}` }],
      },
    })) as unknown as { id: string };
    ids = { patient: pat ?? '', order: sr ?? '', encounter: enc ?? '', practitioner: pract ?? '', study: study.id };
    for (const given of ['A', 'B', 'C']) {
      await s.client.create({
        resourceType: 'Patient',
        body: { resourceType: 'Patient', name: [{ family, given: [given] }] },
      });
    }
  });

  test('fhir-kit-client nextPage and prevPage walk a search both ways', async () => {
    const first = (await s.client.search({
      resourceType: 'Patient',
      searchParams: { family, _count: '1', _sort: 'given' },
    })) as unknown as Bundle;
    expect(first.link?.some((l) => l.relation === 'previous')).toBe(false);
    const second = (await s.client.nextPage({ bundle: first as never })) as unknown as Bundle;
    const third = (await s.client.nextPage({ bundle: second as never })) as unknown as Bundle;
    const back = (await s.client.prevPage({ bundle: third as never })) as unknown as Bundle;
    expect(back.entry?.[0]?.resource?.id).toBe(second.entry?.[0]?.resource?.id);
    const start = (await s.client.prevPage({ bundle: back as never })) as unknown as Bundle;
    expect(start.entry?.[0]?.resource?.id).toBe(first.entry?.[0]?.resource?.id);
    expect(start.link?.some((l) => l.relation === 'previous')).toBe(false);
    const seen = [first, second, third].map((b) => b.entry?.[0]?.resource?.id);
    expect(new Set(seen).size).toBe(3);
  });

  test('Patient/$everything through fhir-kit-client', async () => {
    const res = (await s.client.operation({
      name: '$everything',
      resourceType: 'Patient',
      id: ids.patient,
      method: 'GET',
    })) as unknown as Bundle;
    const got = bundleResources(res).map((r) => `${r.resourceType}/${r.id}`);
    expect(got).toEqual(
      expect.arrayContaining([
        `Patient/${ids.patient}`,
        `Encounter/${ids.encounter}`,
        `ServiceRequest/${ids.order}`,
        `ImagingStudy/${ids.study}`,
        `Practitioner/${ids.practitioner}`,
      ]),
    );
    const only = (await s.client.operation({
      name: '$everything',
      resourceType: 'Patient',
      id: ids.patient,
      method: 'GET',
      input: { _type: 'Patient,Encounter' },
    })) as unknown as Bundle;
    expect(only.entry?.map((e) => e.resource?.resourceType).sort()).toEqual(['Encounter', 'Patient']);
  });

  test('_include:iterate is followed (fhir-kit-client), also under handling=strict', async () => {
    const res = (await s.client.search({
      resourceType: 'ImagingStudy',
      searchParams: {
        _id: ids.study,
        _include: 'ImagingStudy:basedon',
        '_include:iterate': 'ServiceRequest:requester',
      },
      options: { headers: { prefer: 'handling=strict' } },
    })) as unknown as Bundle;
    const included = res.entry
      ?.filter((e) => e.search?.mode === 'include')
      .map((e) => e.resource?.resourceType)
      .sort();
    expect(included).toEqual(['Practitioner', 'ServiceRequest']);
  });

  test('_include=* includes every reference parameter of the type', async () => {
    const res = await request(s.app.server)
      .get(`/fhir/ImagingStudy?_id=${ids.study}&_include=*`)
      .set(s.auth)
      .set('prefer', 'handling=strict');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const included = (res.body as Bundle).entry
      ?.filter((e) => e.search?.mode === 'include')
      .map((e) => e.resource?.resourceType)
      .sort();
    expect(included).toEqual(['Patient', 'ServiceRequest']);
  });

  test('system search over several types, paged with next links', async () => {
    const q = `_type=Patient,Encounter&_id=${ids.patient},${ids.encounter}&_count=1`;
    const res = await request(s.app.server).get(`/fhir?${q}`).set(s.auth);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const first = res.body as Bundle;
    expect(first.entry?.map((e) => e.resource?.resourceType)).toEqual(['Patient']);
    const next = (await s.client.nextPage({ bundle: first as never })) as unknown as Bundle;
    expect(next.entry?.map((e) => e.resource?.resourceType)).toEqual(['Encounter']);
    const withIncludes = await request(s.app.server)
      .get(`/fhir?_type=Patient,Encounter&_id=${ids.encounter}&_include=Encounter:patient`)
      .set(s.auth)
      .set('prefer', 'handling=strict');
    expect(withIncludes.status, JSON.stringify(withIncludes.body)).toBe(200);
    expect((withIncludes.body as Bundle).entry?.map((e) => `${e.search?.mode}:${e.resource?.resourceType}`)).toEqual([
      'match:Encounter',
      'include:Patient',
    ]);
    const bad = await request(s.app.server).get('/fhir?_type=Nope').set(s.auth);
    expect(bad.status).toBe(400);
  });
});
