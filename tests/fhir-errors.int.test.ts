import type { Identifier } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { paramInfo } from '../src/fhir/index-values.ts';
import { RESOURCE_TYPES, RESOURCES } from '../src/fhir/registry.ts';
import { dbFingerprint, type FhirTestServer, fhirServer, uniq } from './helpers/fhir.ts';

const MRN = 'http://imaging-ehr.local/fhir/sid/mrn';
const ACC = 'http://imaging-ehr.local/fhir/sid/accession';

let s: FhirTestServer;
let patientId = '';
let mrn = '';
let accession = '';
beforeAll(async () => {
  s = await fhirServer();
  const p = await request(s.app.server)
    .post('/fhir/Patient')
    .set(s.auth)
    .send({ resourceType: 'Patient', name: [{ family: uniq('Err') }] });
  patientId = p.body.id;
  await request(s.app.server).post('/fhir/Patient').set(s.auth).send({ resourceType: 'Patient' });
  mrn = (p.body.identifier as Identifier[]).find((i) => i.system === MRN)?.value as string;
  const o = await request(s.app.server)
    .post('/fhir/ServiceRequest')
    .set(s.auth)
    .send({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { text: 'CT' },
      subject: { reference: `Patient/${patientId}` },
    });
  accession = (o.body.identifier as Identifier[]).find((i) => i.system === ACC)?.value as string;
  expect(mrn && accession).toBeTruthy();
});
afterAll(async () => {
  await s.app.close();
});

const json = 'application/fhir+json';
const order = (extra: object = {}) => ({
  resourceType: 'ServiceRequest',
  status: 'active',
  intent: 'order',
  code: { text: 'CT' },
  subject: { reference: `Patient/${patientId}` },
  ...extra,
});

interface Case {
  method: 'post' | 'put' | 'patch' | 'get' | 'delete';
  path: () => string;
  type?: string;
  headers?: () => Record<string, string>;
  body?: () => string | Buffer;
  status: number;
  /** An issue code or expression the OperationOutcome must carry. */
  issue?: RegExp;
}

const CASES: [string, Case][] = [
  [
    'malformed JSON',
    { method: 'post', path: () => '/fhir/Patient', type: json, body: () => '{"resourceType": "Patient",', status: 400 },
  ],
  [
    'JSON that is not an object',
    { method: 'post', path: () => '/fhir/Patient', type: json, body: () => '[1,2]', status: 400 },
  ],
  ['empty body', { method: 'post', path: () => '/fhir/Patient', type: json, body: () => '', status: 400 }],
  [
    'wrong resourceType',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Practitioner' }),
      status: 400,
      issue: /resourceType/,
    },
  ],
  [
    'id mismatch on PUT',
    {
      method: 'put',
      path: () => `/fhir/Patient/${patientId}`,
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient', id: 'other' }),
      status: 400,
    },
  ],
  [
    'no id on PUT',
    {
      method: 'put',
      path: () => `/fhir/Patient/${patientId}`,
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient' }),
      status: 400,
    },
  ],
  [
    'text/plain body',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: 'text/plain',
      body: () => '{"resourceType":"Patient"}',
      status: 415,
    },
  ],
  [
    'XML body',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: 'application/fhir+xml',
      body: () => '<Patient xmlns="http://hl7.org/fhir"/>',
      status: 415,
    },
  ],
  [
    'PATCH as application/json',
    {
      method: 'patch',
      path: () => `/fhir/Patient/${patientId}`,
      type: 'application/json',
      body: () => '[]',
      status: 415,
    },
  ],
  [
    'oversized body',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () =>
        JSON.stringify({
          resourceType: 'Patient',
          text: {
            status: 'generated',
            div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(1_200_000)}</div>`,
          },
        }),
      status: 413,
    },
  ],
  [
    'invalid date',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient', birthDate: '2020-13-45' }),
      status: 400,
      issue: /Patient\.birthDate/,
    },
  ],
  [
    'unknown element',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient', shoeSize: 42 }),
      status: 400,
    },
  ],
  [
    'NUL in a string',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient', name: [{ family: 'a\u0000b' }] }),
      status: 400,
    },
  ],
  [
    'dangling reference',
    {
      method: 'post',
      path: () => '/fhir/ServiceRequest',
      type: json,
      body: () => JSON.stringify(order({ subject: { reference: 'Patient/does-not-exist' } })),
      status: 422,
      issue: /ServiceRequest\.subject/,
    },
  ],
  [
    'reference to a type not served',
    {
      method: 'post',
      path: () => '/fhir/ServiceRequest',
      type: json,
      body: () => JSON.stringify(order({ requester: { reference: 'Organization/x' } })),
      status: 422,
    },
  ],
  [
    'urn:uuid reference outside a transaction',
    {
      method: 'post',
      path: () => '/fhir/ServiceRequest',
      type: json,
      body: () => JSON.stringify(order({ subject: { reference: 'urn:uuid:0b4f8f52-2a0a-4e55-9d5b-1d6e5a1b4c11' } })),
      status: 422,
    },
  ],
  [
    'profile: order without code',
    {
      method: 'post',
      path: () => '/fhir/ServiceRequest',
      type: json,
      body: () => JSON.stringify(order({ code: undefined })),
      status: 422,
      issue: /ServiceRequest\.code/,
    },
  ],
  [
    'duplicate MRN',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Patient', identifier: [{ system: MRN, value: mrn }] }),
      status: 409,
      issue: /Patient\.identifier/,
    },
  ],
  [
    'duplicate accession',
    {
      method: 'post',
      path: () => '/fhir/ServiceRequest',
      type: json,
      body: () => JSON.stringify(order({ identifier: [{ system: ACC, value: accession }] })),
      status: 409,
      issue: /ServiceRequest\.identifier/,
    },
  ],
  [
    'stale If-Match',
    {
      method: 'put',
      path: () => `/fhir/Patient/${patientId}`,
      type: json,
      headers: () => ({ 'if-match': 'W/"99"' }),
      body: () => JSON.stringify({ resourceType: 'Patient', id: patientId }),
      status: 412,
    },
  ],
  [
    'malformed If-Match',
    {
      method: 'put',
      path: () => `/fhir/Patient/${patientId}`,
      type: json,
      headers: () => ({ 'if-match': 'banana' }),
      body: () => JSON.stringify({ resourceType: 'Patient', id: patientId }),
      status: 400,
    },
  ],
  [
    'JSON Patch with a failing test',
    {
      method: 'patch',
      path: () => `/fhir/Patient/${patientId}`,
      type: 'application/json-patch+json',
      body: () =>
        JSON.stringify([
          { op: 'test', path: '/gender', value: 'unknown' },
          { op: 'add', path: '/gender', value: 'male' },
        ]),
      status: 422,
    },
  ],
  [
    'JSON Patch changing the id',
    {
      method: 'patch',
      path: () => `/fhir/Patient/${patientId}`,
      type: 'application/json-patch+json',
      body: () => JSON.stringify([{ op: 'replace', path: '/id', value: 'other' }]),
      status: 400,
    },
  ],
  [
    'conditional create with several matches',
    {
      method: 'post',
      path: () => '/fhir/Patient',
      type: json,
      headers: () => ({ 'if-none-exist': `identifier=${MRN}|` }),
      body: () => JSON.stringify({ resourceType: 'Patient' }),
      status: 412,
    },
  ],
  [
    'unknown resource type',
    {
      method: 'post',
      path: () => '/fhir/Specimen',
      type: json,
      body: () => JSON.stringify({ resourceType: 'Specimen' }),
      status: 404,
    },
  ],
  ['type-level DELETE', { method: 'delete', path: () => '/fhir/Patient', status: 405 }],
  ['PUT on metadata', { method: 'put', path: () => '/fhir/metadata', type: json, body: () => '{}', status: 405 }],
  ['XML requested', { method: 'get', path: () => `/fhir/Patient/${patientId}?_format=xml`, status: 406 }],
  ['read of a missing resource', { method: 'get', path: () => '/fhir/Patient/no-such-patient', status: 404 }],
  ['invalid date in a search', { method: 'get', path: () => '/fhir/Patient?birthdate=2020-02-30', status: 400 }],
  ['unknown modifier', { method: 'get', path: () => '/fhir/Patient?name:sounds-like=x', status: 400 }],
];

describe('bad input gets the right 4xx OperationOutcome and changes nothing', () => {
  test.each(CASES)('%s', async (_name, c) => {
    const before = await dbFingerprint(s.app);
    let req = request(s.app.server)[c.method](c.path()).set(s.auth);
    for (const [k, v] of Object.entries(c.headers?.() ?? {})) req = req.set(k, v);
    if (c.type) req = req.set('content-type', c.type);
    const res = c.body ? await req.send(c.body()) : await req;
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(c.status);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue?.[0]?.severity).toBe('error');
    expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |node_modules/);
    if (c.issue) expect(JSON.stringify(res.body.issue)).toMatch(c.issue);
    expect(await dbFingerprint(s.app)).toBe(before);
  });
});

const EVIL = ["' OR 1=1 --", '%00', '\u0000', '\u202e', "x'); DROP TABLE patients; --", '\\', '*', '_'];
const paramCases = RESOURCE_TYPES.flatMap((type) =>
  ['_id', '_lastUpdated', ...RESOURCES[type].params].flatMap((code) => EVIL.map((evil) => [type, code, evil] as const)),
);

describe('injection-like strings in every search parameter are data', () => {
  test.each(paramCases)('%s?%s=%j', async (type, code, evil) => {
    const before = await dbFingerprint(s.app);
    const res = await request(s.app.server)
      .get(`/fhir/${type}?${code}=${encodeURIComponent(evil)}`)
      .set(s.auth);
    const isDate = code === '_lastUpdated' || (code !== '_id' && paramInfo(type, code).type === 'date');
    // NUL can be neither stored nor searched for: refused like invalid UTF-8 in a value.
    if (isDate || evil === '\u0000') {
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
    } else {
      expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
      expect(res.body.resourceType).toBe('Bundle');
      expect(res.body.entry ?? []).toEqual([]);
    }
    expect(await dbFingerprint(s.app)).toBe(before);
  });
});
