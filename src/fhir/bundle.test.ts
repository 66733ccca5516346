import type { Bundle, ServiceRequest } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { BadRequestError } from './errors.ts';
import { parseEntryUrl, planBundle, referenceMap, rewriteReferences, transactionOrder } from './bundle.ts';

const BASE = 'https://ehr.example.org/fhir';

describe('parseEntryUrl', () => {
  test.each([
    ['Patient', { kind: 'type', type: 'Patient', query: {} }],
    ['Patient?name=a&name=b', { kind: 'type', type: 'Patient', query: { name: ['a', 'b'] } }],
    ['/Patient/1', { kind: 'instance', type: 'Patient', id: '1' }],
    [`${BASE}/Patient/1`, { kind: 'instance', type: 'Patient', id: '1' }],
    ['Patient/1/_history/2', { kind: 'vread', type: 'Patient', id: '1', vid: '2' }],
    ['Patient/1/_history', { kind: 'history', type: 'Patient', id: '1' }],
    ['Patient/_history', { kind: 'history', type: 'Patient' }],
    ['Patient/_search', { kind: 'search', type: 'Patient', query: {} }],
    ['Patient/1/$everything', { kind: 'everything', type: 'Patient', id: '1', query: {} }],
  ])('%s', (url, expected) => {
    expect(parseEntryUrl(url, BASE, 0)).toEqual(expected);
  });

  test.each([['Spaceship/1'], ['https://other.example.org/fhir/Patient/1'], ['Patient/a b'], ['Patient/1/$other']])(
    '%s is a 400',
    (url) => {
      expect(() => parseEntryUrl(url, BASE, 3)).toThrow(BadRequestError);
    },
  );
});

const bundle = (type: string, entry: unknown[]) => ({ resourceType: 'Bundle', type, entry }) as Bundle;
const sr = (subject: string): ServiceRequest => ({
  resourceType: 'ServiceRequest',
  status: 'active',
  intent: 'order',
  subject: { reference: subject },
});

describe('planBundle', () => {
  test.each([
    [{ resourceType: 'Patient' }],
    [bundle('collection', [])],
    [bundle('batch', [{}])],
    [bundle('batch', [{ request: { method: 'TRACE', url: 'Patient' } }])],
    [bundle('batch', [{ request: { method: 'POST', url: 'Patient' } }])],
    [bundle('batch', [{ request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Encounter' } }])],
    [
      bundle('batch', [
        { request: { method: 'PUT', url: 'Patient/1' }, resource: { resourceType: 'Patient', id: '2' } },
      ]),
    ],
    [bundle('batch', [{ request: { method: 'DELETE', url: 'Patient' } }])],
    [bundle('batch', [{ request: { method: 'PATCH', url: 'Patient/1' } }])],
    [
      bundle('transaction', [
        { request: { method: 'DELETE', url: 'Patient/1' } },
        { request: { method: 'PUT', url: 'Patient/1' }, resource: { resourceType: 'Patient', id: '1' } },
      ]),
    ],
    [
      bundle('batch', [
        { fullUrl: 'urn:uuid:a', request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient' } },
        { fullUrl: 'urn:uuid:a', request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient' } },
      ]),
    ],
  ])('%j is a 400 naming the problem', (body) => {
    expect(() => planBundle(body, BASE)).toThrow(BadRequestError);
  });

  test('a PATCH entry takes its JSON Patch from a Binary', () => {
    const data = Buffer.from(JSON.stringify([{ op: 'replace', path: '/active', value: false }])).toString('base64');
    const { entries } = planBundle(
      bundle('batch', [
        {
          request: { method: 'PATCH', url: 'Patient/1' },
          resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data },
        },
      ]),
      BASE,
    );
    expect(entries[0]?.patch).toEqual([{ op: 'replace', path: '/active', value: false }]);
  });
});

describe('transaction references and order', () => {
  test('fullUrls become Type/id, also with a fragment; writes follow their targets', () => {
    const { entries } = planBundle(
      bundle('transaction', [
        { request: { method: 'GET', url: 'Patient?name=x' } },
        { fullUrl: 'urn:uuid:o', request: { method: 'POST', url: 'ServiceRequest' }, resource: sr('urn:uuid:p') },
        { request: { method: 'DELETE', url: 'Encounter/e' } },
        { fullUrl: 'urn:uuid:p', request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient' } },
        {
          fullUrl: `${BASE}/Patient/q`,
          request: { method: 'PUT', url: 'Patient/q' },
          resource: {
            resourceType: 'Patient',
            id: 'q',
            link: [{ other: { reference: 'urn:uuid:p#x' }, type: 'seealso' }],
          },
        },
      ]),
      BASE,
    );
    const map = referenceMap(entries, new Map());
    const patientId = entries[3]?.newId as string;
    expect(map.get('urn:uuid:p')).toBe(`Patient/${patientId}`);
    expect(map.get(`${BASE}/Patient/q`)).toBe('Patient/q');
    for (const e of entries) if (e.resource) rewriteReferences(e.resource, map);
    expect((entries[1]?.resource as ServiceRequest | undefined)?.subject?.reference).toBe(`Patient/${patientId}`);
    expect(JSON.stringify(entries[4]?.resource)).toContain(`"Patient/${patientId}#x"`);
    expect(transactionOrder(entries).map((e) => e.index)).toEqual([2, 3, 1, 4, 0]);
  });

  test('a conditional create that matched maps its fullUrl to the existing resource', () => {
    const { entries } = planBundle(
      bundle('transaction', [
        {
          fullUrl: 'urn:uuid:p',
          request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=a|b' },
          resource: { resourceType: 'Patient' },
        },
      ]),
      BASE,
    );
    expect(referenceMap(entries, new Map([[0, 'existing']])).get('urn:uuid:p')).toBe('Patient/existing');
  });
});
