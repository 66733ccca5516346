import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dbFingerprint, type FhirTestServer, fhirServer, uniq } from './helpers/fhir.ts';

/**
 * Inputs a conformant FHIR server refuses (https://hl7.org/fhir/R4/validation.html), and inputs that used to reach a
 * 500: each gets a 4xx OperationOutcome naming the element, and nothing is written.
 */

let s: FhirTestServer;
let patientId = '';
let endpointId = '';
beforeAll(async () => {
  s = await fhirServer();
  const p = await request(s.app.server)
    .post('/fhir/Patient')
    .set(s.auth)
    .send({ resourceType: 'Patient', name: [{ family: uniq('Conf') }] });
  patientId = p.body.id;
  const e = await request(s.app.server)
    .post('/fhir/Endpoint')
    .set(s.auth)
    .send({
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: {
        system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type',
        code: 'dicom-wado-rs',
      },
      payloadType: [{ text: 'DICOM' }],
      address: 'https://pacs.example.org/dicomweb',
    });
  endpointId = e.body.id;
  expect(patientId && endpointId).toBeTruthy();
});
afterAll(async () => {
  await s.app.close();
});

const XHTML = 'http://www.w3.org/1999/xhtml';
const order = (extra: object = {}) => ({
  resourceType: 'ServiceRequest',
  status: 'active',
  intent: 'order',
  code: { text: 'CT' },
  subject: { reference: `Patient/${patientId}` },
  ...extra,
});
const patientWithDiv = (div: string) => JSON.stringify({ resourceType: 'Patient', text: { status: 'generated', div } });

interface Case {
  method?: 'post' | 'get' | 'patch';
  path: () => string;
  body?: () => string | Buffer;
  /** Content type of the body (FHIR JSON unless given). */
  type?: string;
  status: number | number[];
  /** What the OperationOutcome's issues must mention (the element). */
  issue?: RegExp;
}

const CASES: [string, Case][] = [
  [
    'JSON nested 3,000 levels deep',
    {
      path: () => '/fhir/Patient',
      body: () => `{"resourceType":"Patient","extension":${'['.repeat(3000)}${']'.repeat(3000)}}`,
      status: 400,
      issue: /nest|deep/i,
    },
  ],
  [
    'a 900 KB family name',
    {
      path: () => '/fhir/Patient',
      body: () => JSON.stringify({ resourceType: 'Patient', name: [{ family: 'x'.repeat(900_000) }] }),
      status: 400,
      issue: /Patient\.name\[0\]\.family/,
    },
  ],
  [
    'a 3,000-character identifier value',
    {
      path: () => '/fhir/Patient',
      body: () =>
        JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:x', value: 'é'.repeat(3000) }] }),
      status: 400,
      issue: /Patient\.identifier\[0\]\.value/,
    },
  ],
  [
    'invalid UTF-8 in the body',
    {
      path: () => '/fhir/Patient',
      body: () =>
        Buffer.concat([
          Buffer.from('{"resourceType":"Patient","name":[{"family":"'),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}]}'),
        ]),
      status: 400,
      issue: /UTF-8/,
    },
  ],
  [
    'NUL in an element name',
    {
      path: () => '/fhir/Patient',
      body: () => '{"resourceType":"Patient","gen\\u0000der":"male"}',
      status: 400,
    },
  ],
  [
    'gender outside its required binding',
    {
      path: () => '/fhir/Patient',
      body: () => JSON.stringify({ resourceType: 'Patient', gender: 'robot' }),
      status: [400, 422],
      issue: /Patient\.gender/,
    },
  ],
  [
    'ServiceRequest.status outside its required binding',
    {
      path: () => '/fhir/ServiceRequest',
      body: () => JSON.stringify(order({ status: 'sideways' })),
      status: [400, 422],
      issue: /ServiceRequest\.status/,
    },
  ],
  [
    'an unknown __proto__ element',
    {
      path: () => '/fhir/Patient',
      body: () => '{"resourceType":"Patient","__proto__":{"active":true}}',
      status: 400,
      issue: /Patient\.__proto__/,
    },
  ],
  [
    'a nested __proto__ element',
    {
      path: () => '/fhir/Patient',
      body: () => '{"resourceType":"Patient","name":[{"family":"x","__proto__":{"text":"y"}}]}',
      status: 400,
      issue: /Patient\.name\[0\]\.__proto__/,
    },
  ],
  [
    'an unknown constructor element',
    {
      path: () => '/fhir/Patient',
      body: () => '{"resourceType":"Patient","constructor":{"prototype":{}}}',
      status: 400,
      issue: /Patient\.constructor/,
    },
  ],
  [
    'ServiceRequest.subject pointing to an Endpoint',
    {
      path: () => '/fhir/ServiceRequest',
      body: () => JSON.stringify(order({ subject: { reference: `Endpoint/${endpointId}` } })),
      status: [400, 422],
      issue: /ServiceRequest\.subject/,
    },
  ],
  [
    'ServiceRequest.requester pointing to a Patient through its Reference.type',
    {
      path: () => '/fhir/ServiceRequest',
      body: () => JSON.stringify(order({ requester: { type: 'Endpoint', identifier: { value: 'x' } } })),
      status: [400, 422],
      issue: /ServiceRequest\.requester/,
    },
  ],
  [
    'a contained reference with no matching contained resource',
    {
      path: () => '/fhir/ServiceRequest',
      body: () => JSON.stringify(order({ performer: [{ reference: '#x' }] })),
      status: [400, 422],
      issue: /ServiceRequest\.performer\[0\]/,
    },
  ],
  [
    'a contained resource nothing refers to (dom-3)',
    {
      path: () => '/fhir/ServiceRequest',
      body: () => JSON.stringify(order({ contained: [{ resourceType: 'Practitioner', id: 'lonely' }] })),
      status: [400, 422],
      issue: /ServiceRequest\.contained\[0\]/,
    },
  ],
  [
    '<script> in the narrative (txt-1)',
    {
      path: () => '/fhir/Patient',
      body: () => patientWithDiv(`<div xmlns="${XHTML}"><p>hi</p><script>alert(1)</script></div>`),
      status: [400, 422],
      issue: /Patient\.text\.div/,
    },
  ],
  [
    'an event attribute in the narrative (txt-1)',
    {
      path: () => '/fhir/Patient',
      body: () => patientWithDiv(`<div xmlns="${XHTML}"><p onclick="alert(1)">hi</p></div>`),
      status: [400, 422],
      issue: /Patient\.text\.div/,
    },
  ],
  [
    'a javascript: link in the narrative (txt-1)',
    {
      path: () => '/fhir/Patient',
      body: () => patientWithDiv(`<div xmlns="${XHTML}"><a href="javascript:alert(1)">x</a></div>`),
      status: [400, 422],
      issue: /Patient\.text\.div/,
    },
  ],
  [
    'a narrative that is not well-formed XHTML',
    {
      path: () => '/fhir/Patient',
      body: () => patientWithDiv(`<div xmlns="${XHTML}"><p>open</div>`),
      status: [400, 422],
      issue: /Patient\.text\.div/,
    },
  ],
  [
    'an empty narrative (txt-2)',
    {
      path: () => '/fhir/Patient',
      body: () => patientWithDiv(`<div xmlns="${XHTML}">  <p> </p> </div>`),
      status: [400, 422],
      issue: /Patient\.text\.div/,
    },
  ],
  [
    'an extension used outside its context',
    {
      path: () => '/fhir/ServiceRequest',
      body: () =>
        JSON.stringify(
          order({
            extension: [
              {
                url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace',
                valueAddress: { city: 'Ghent' },
              },
            ],
          }),
        ),
      status: [400, 422],
      issue: /ServiceRequest\.extension\[0\]/,
    },
  ],
  ['NUL in a search value', { method: 'get', path: () => '/fhir/Patient?name=%00', status: 400, issue: /name/ }],
  [
    'invalid percent-encoding in a search value',
    { method: 'get', path: () => '/fhir/Patient?name=%ZZ', status: 400, issue: /name/ },
  ],
  [
    'percent-encoded invalid UTF-8 in a search value',
    { method: 'get', path: () => '/fhir/Patient?family=%C3%28', status: 400, issue: /family/ },
  ],
  [
    'an overlong search value',
    { method: 'get', path: () => `/fhir/Patient?name=${'a'.repeat(5000)}`, status: 400, issue: /name/ },
  ],
  [
    'NUL in a POST _search form body',
    {
      path: () => '/fhir/Patient/_search',
      type: 'application/x-www-form-urlencoded',
      body: () => 'family=%00',
      status: 400,
      issue: /family/,
    },
  ],
  [
    'a JSON Patch adding a __proto__ element',
    {
      path: () => `/fhir/Patient/${patientId}`,
      method: 'patch',
      type: 'application/json-patch+json',
      body: () => '[{"op":"add","path":"/active","value":{"__proto__":{"x":1}}}]',
      status: 400,
      issue: /__proto__/,
    },
  ],
  [
    'a JSON Patch making the family name too long to index',
    {
      path: () => `/fhir/Patient/${patientId}`,
      method: 'patch',
      type: 'application/json-patch+json',
      body: () => JSON.stringify([{ op: 'add', path: '/name/0/family', value: 'y'.repeat(5000) }]),
      status: 400,
      issue: /Patient\.name\[0\]\.family/,
    },
  ],
  [
    'an overlong _id',
    { method: 'get', path: () => `/fhir/Patient?_id=${'a'.repeat(5000)}`, status: 400, issue: /_id/ },
  ],
];

describe('refused writes and searches: a 4xx OperationOutcome naming the element, nothing written', () => {
  test.each(CASES)('%s', async (_name, c) => {
    const before = await dbFingerprint(s.app);
    // fetch sends the bytes as they are (supertest would JSON-serialize a Buffer sent as JSON).
    const r = await fetch(`${s.base.replace(/\/fhir$/, '')}${c.path()}`, {
      method: (c.method ?? 'post').toUpperCase(),
      headers: { ...s.auth, ...(c.body ? { 'content-type': c.type ?? 'application/fhir+json' } : {}) },
      ...(c.body ? { body: c.body() } : {}),
    });
    const res = {
      status: r.status,
      headers: Object.fromEntries(r.headers),
      body: (await r.json()) as { resourceType?: string; issue?: { severity?: string }[] },
    };
    const allowed = [c.status].flat();
    expect(allowed, JSON.stringify(res.body).slice(0, 500)).toContain(res.status);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(res.body.issue?.[0]?.severity).toBe('error');
    expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |node_modules/);
    if (c.issue) expect(JSON.stringify(res.body.issue)).toMatch(c.issue);
    expect(await dbFingerprint(s.app)).toBe(before);
  });

  test('no Patient carries a prototype-polluted element afterwards', async () => {
    const res = await request(s.app.server).get('/fhir/Patient?_count=1000').set(s.auth);
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body)).not.toMatch(/__proto__|"constructor"/);
    expect(({} as Record<string, unknown>)['active']).toBeUndefined();
  });
});

describe('what stays accepted', () => {
  test.each([
    ['an unknown extension anywhere', () => order({ extension: [{ url: 'http://example.org/x', valueString: 'y' }] })],
    [
      'a contained resource that is referenced',
      () => order({ contained: [{ resourceType: 'Practitioner', id: 'p1' }], requester: { reference: '#p1' } }),
    ],
    [
      'a narrative with basic XHTML, a table, an image and a link',
      () => ({
        resourceType: 'Patient',
        text: {
          status: 'generated',
          div: `<div xmlns="${XHTML}"><p><b>Ann</b> <a href="https://example.org/a">x</a></p><table><tr><td>1</td></tr></table><img src="#p" alt="p"/></div>`,
        },
      }),
    ],
    [
      'an extension in its context',
      () => ({
        resourceType: 'Patient',
        extension: [
          { url: 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace', valueAddress: { city: 'Ghent' } },
        ],
      }),
    ],
    ['a reference to Patient in ServiceRequest.subject', () => order()],
  ] as [string, () => { resourceType: string }][])('%s', async (_name, make) => {
    const body = make();
    const res = await request(s.app.server).post(`/fhir/${body.resourceType}`).set(s.auth).send(body);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(201);
  });
});
