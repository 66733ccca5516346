import { beforeAll, describe, expect, test } from 'vitest';
import type { Access, Agent } from '../auth/access.ts';
import { describeAuthRequest } from './auth-events.ts';
import { AuditContext, fallbackDescription } from './context.ts';
import { patientsInFhirJson } from './enrich.ts';
import { auditReadScope, isPatientAuditScope } from './read-access.ts';
import { AuditSearchError, dateBounds, parseAuditSearch } from './search.ts';
import { auditEventIssues } from './validate.ts';

test.each([
  ['fhir', 'GET', '/fhir/ServiceRequest/s1/$viewer-url', 'fhir'],
  ['dicom', 'POST', '/dicom-web/studies', 'dicom-store'],
  ['api', 'POST', '/api/v1/dicom/upload', 'api'],
  ['auth', 'POST', '/auth/token', 'auth'],
  [undefined, 'GET', '/dicom-web/studies/1.2', 'dicom-retrieve'],
  [undefined, 'GET', '/api/v1/me', 'api'],
] as const)('the route declares audit %s: %s %s gets a %s event', (how, method, url, kind) => {
  expect(fallbackDescription(method, url, how).kind).toBe(kind);
});

describe('fallback description from method and URL', () => {
  test.each([
    ['GET', '/fhir/Patient/p1', 'read', 'Patient', 'p1', undefined],
    ['GET', '/fhir/Patient/p1/_history/2', 'vread', 'Patient', 'p1', undefined],
    ['GET', '/fhir/Patient/p1/_history', 'history-instance', 'Patient', 'p1', undefined],
    ['GET', '/fhir/Observation?code=x', 'search-type', 'Observation', undefined, 'code=x'],
    ['POST', '/fhir/Observation/_search', 'search-type', 'Observation', undefined, undefined],
    ['POST', '/fhir/Observation', 'create', 'Observation', undefined, undefined],
    ['PUT', '/fhir/Observation/o1', 'update', 'Observation', 'o1', undefined],
    ['PATCH', '/fhir/Observation/o1', 'patch', 'Observation', 'o1', undefined],
    ['DELETE', '/fhir/Observation/o1', 'delete', 'Observation', 'o1', undefined],
    ['GET', '/fhir/Patient/p1/ImagingStudy', 'search-type', 'ImagingStudy', undefined, 'Patient=p1'],
    ['GET', '/fhir/ImagingStudy/i1/$viewer-url', 'operation', 'ImagingStudy', 'i1', undefined],
    ['GET', '/fhir', 'search-system', undefined, undefined, undefined],
  ])('%s %s → %s', (method, url, interaction, resourceType, id, query) => {
    const d = fallbackDescription(method, url);
    expect(d.kind).toBe('fhir');
    if (d.kind === 'fhir') expect(d.input).toMatchObject({ interaction, resourceType, id, query });
  });

  test.each([
    ['GET', '/dicom-web/studies?PatientID=1', 'dicom-query', []],
    ['GET', '/dicom-web/studies/1.2.3/series', 'dicom-query', ['1.2.3']],
    ['GET', '/dicom-web/studies/1.2.3', 'dicom-retrieve', ['1.2.3']],
    ['GET', '/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/frames/1', 'dicom-retrieve', ['1.2.3']],
    ['POST', '/dicom-web/studies', 'dicom-store', []],
    ['GET', '/dicom-web/studies/not-a-uid', 'dicom-retrieve', []],
  ])('%s %s → %s %j', (method, url, kind, uids) => {
    const d = fallbackDescription(method, url);
    expect(d.kind).toBe(kind);
    if (d.kind === 'dicom-query' || d.kind === 'dicom-retrieve' || d.kind === 'dicom-store') {
      expect((d.input.studies ?? []).map((s) => s.studyUid)).toEqual(uids);
    }
  });

  test.each([
    ['POST', '/auth/token', '/auth/token'],
    ['POST', '/auth/authorize', '/auth/authorize'],
    ['GET', '/api/viewer-url', '/api/viewer-url'],
  ])('%s %s → an auth/api event naming the path', (method, url, path) => {
    const d = fallbackDescription(method, url);
    expect(['auth', 'api']).toContain(d.kind);
    expect((d.input as { path: string }).path).toBe(path);
  });
});

describe('the context builds one valid event per request', () => {
  // Loading the R4 definitions for the validator takes a few seconds on a busy machine.
  beforeAll(() => void auditEventIssues(new AuditContext(facts).build(200)), 60_000);
  const facts = {
    requestId: 'r1',
    method: 'GET',
    url: '/fhir/Patient/p1',
    network: '10.0.0.1',
    serverBaseUrl: 'http://x',
  };
  test.each([
    [200, false, '0', ['Patient/p1']],
    [404, false, '4', []],
    [200, true, '4', []],
    [403, false, '4', []],
    [500, false, '8', ['Patient/p1']],
  ])('status %i, deny()=%s → outcome %s, patients %j', (status, hidden, outcome, patients) => {
    const ctx = new AuditContext(facts).addPatients('p1');
    if (hidden) ctx.deny();
    const e = ctx.build(status);
    expect(e.outcome).toBe(outcome);
    expect((e.entity ?? []).filter((x) => x.role?.code === '1').map((x) => x.what?.reference)).toEqual(patients);
    expect(auditEventIssues(e)).toEqual([]);
  });
});

test.each([
  ['2025', '2025-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
  ['2025-02', '2025-02-01T00:00:00.000Z', '2025-03-01T00:00:00.000Z'],
  ['eq2025-02-03', '2025-02-03T00:00:00.000Z', '2025-02-04T00:00:00.000Z'],
  ['2025-02-03T04:05:06Z', '2025-02-03T04:05:06.000Z', '2025-02-03T04:05:07.000Z'],
])('date=%s → [%s, %s)', (value, from, to) => {
  expect(dateBounds(value).map((b) => b.at.toISOString())).toEqual([from, to]);
});

test.each([
  ['ge2025-02-03', 'ge', '2025-02-03T00:00:00.000Z'],
  ['gt2025-02-03', 'ge', '2025-02-04T00:00:00.000Z'],
  ['lt2025-02-03', 'lt', '2025-02-03T00:00:00.000Z'],
  ['le2025-02-03', 'lt', '2025-02-04T00:00:00.000Z'],
])('date=%s → %s %s', (value, op, at) => {
  expect(dateBounds(value)).toEqual([{ op, at: new Date(at) }]);
});

test.each([
  ['date', '2025-13'],
  ['date', 'yesterday'],
  ['colour', 'red'],
  ['_count', '1000'],
  ['_sort', 'agent'],
  ['patient:missing', 'true'],
])('%s=%s is a search error', (k, v) => {
  expect(() => parseAuditSearch([[k, v]])).toThrow(AuditSearchError);
});

test('search parameters become typed conditions', () => {
  const s = parseAuditSearch([
    ['patient', 'Patient/a,b'],
    ['subtype', 'read'],
    ['outcome', '4'],
    ['_sort', 'date'],
    ['_count', '5'],
  ]);
  expect(s.arrays).toEqual([
    { column: 'patient_ids', values: ['a', 'b'] },
    { column: 'subtype_tokens', values: ['read'] },
  ]);
  expect(s.scalars).toEqual([{ column: 'outcome', values: ['4'] }]);
  expect(s).toMatchObject({ sort: 'asc', count: 5, offset: 0 });
});

const agent = (roles: string[]): Agent => ({ who: 'u', sub: 'u', roles });
const access = (kind: Access['kind'], roles: string[], allows: boolean, extra: Partial<Access> = {}): Access => ({
  kind,
  agent: agent(roles),
  allows: () => allows,
  patientFilter: () => ({ all: true }),
  restrictions: () => [],
  ...extra,
});

test.each<[string, Access | undefined, string]>([
  ['no access', undefined, 'unauthenticated'],
  ['auditor with AuditEvent scope', access('user', ['auditor'], true), 'all'],
  ['auditor without it', access('user', ['auditor'], false), 'forbidden'],
  ['admin (not an auditor)', access('user', ['admin'], true), 'forbidden'],
  ['doctor with user/*.rs', access('user', ['doctor'], true), 'forbidden'],
  ['backend client', access('system', [], true), 'forbidden'],
  [
    'patient token with patient/AuditEvent.rs',
    access('patient', [], true, { patientContext: 'pa', scopes: ['patient/AuditEvent.rs'] }),
    'patients',
  ],
  [
    'patient token with patient/*.rs only',
    access('patient', [], true, { patientContext: 'pa', scopes: ['patient/*.rs'] }),
    'forbidden',
  ],
])('%s → %s', (_name, a, kind) => {
  const scope = auditReadScope(a);
  expect(scope.kind).toBe(kind);
  if (scope.kind === 'patients') expect(scope.patientIds).toEqual(['pa']);
});

test.each([
  ['patient/AuditEvent.rs', true],
  ['patient/AuditEvent.read', true],
  ['patient/AuditEvent.s', true],
  ['patient/AuditEvent.write', false],
  ['patient/AuditEvent.cud', false],
  ['patient/*.rs', false],
  ['user/AuditEvent.rs', false],
])('isPatientAuditScope(%s) = %s', (scope, yes) => {
  expect(isPatientAuditScope(scope)).toBe(yes);
});

test('patients in FHIR JSON: a Patient, subject/patient references, Bundles; garbage gives none', () => {
  const bundle = {
    resourceType: 'Bundle',
    entry: [
      { resource: { resourceType: 'Patient', id: 'a' } },
      { resource: { resourceType: 'Observation', subject: { reference: 'Patient/b' } } },
      { resource: { resourceType: 'Coverage', patient: { reference: 'http://x/fhir/Patient/c' } } },
      { resource: { resourceType: 'Practitioner', id: 'd' } },
    ],
  };
  expect(patientsInFhirJson(JSON.stringify(bundle))).toEqual(['a', 'b', 'c']);
  expect(patientsInFhirJson('not json')).toEqual([]);
});

test.each([
  ['/auth/authorize', 401, 'username=bob&password=x', '', 'login'],
  [
    '/auth/token',
    401,
    'client_assertion=a.b.c',
    '{"error":"invalid_client","error_description":"bad"}',
    'client-assertion-refused',
  ],
  ['/auth/token', 400, 'grant_type=x', '{"error":"unsupported_grant_type"}', undefined],
  ['/auth/revoke', 200, 'token=x', '', undefined],
])('POST %s %i → %s', (path, status, body, payload, kind) => {
  expect(describeAuthRequest('POST', path, status, body, payload)?.kind).toBe(kind);
});
