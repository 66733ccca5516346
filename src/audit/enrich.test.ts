import type { AuditEvent } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { dicomKeys, fhirNamed, lookupable } from './enrich.ts';
import { auditEventIssues } from './validate.ts';

beforeAll(() => void auditEventIssues({ resourceType: 'AuditEvent' } as AuditEvent), 60_000);

describe('fhirNamed: the patients a FHIR request names, from its URL', () => {
  test.each<[string, string[], string[], { type: string; id: string } | undefined]>([
    ['/fhir/Patient/B', ['B'], [], undefined],
    ['/fhir/Patient/B/_history/2', ['B'], [], undefined],
    ['/fhir/Patient/B/ServiceRequest?status=active', ['B'], [], undefined],
    ['/fhir/ServiceRequest?patient=B', ['B'], [], undefined],
    ['/fhir/ServiceRequest?patient=Patient%2FB,http://x/fhir/Patient/C', ['B', 'C'], [], undefined],
    ['/fhir/ImagingStudy?subject:Patient=Patient/B', ['B'], [], undefined],
    ['/fhir/Patient?_id=A,B', ['A', 'B'], [], undefined],
    ['/fhir/ServiceRequest?_id=sr-1', [], [], undefined],
    ['/fhir/Patient?identifier=urn:mrn|MRN-B', [], ['MRN-B'], undefined],
    ['/fhir/ServiceRequest/sr-1', [], [], { type: 'ServiceRequest', id: 'sr-1' }],
    ['/fhir/ServiceRequest/_search', [], [], undefined],
    ['/fhir/Patient?patient=../../etc', [], [], undefined],
    ['/fhir/Patient?identifier=%00', [], [], undefined],
  ])('%s', (url, patientIds, mrns, resource) => {
    const named = fhirNamed(url);
    expect(named.patientIds).toEqual(patientIds);
    expect(named.mrns).toEqual(mrns);
    expect(named.resource).toEqual(resource);
  });
});

test('dicomKeys splits a QIDO PatientID list (and leaves wildcards out)', () => {
  const d = { kind: 'dicom-query', input: { path: '/studies', query: '' } } as const;
  expect(dicomKeys(d, '/dicom-web/studies?PatientID=MRN-A,MRN-B').mrns).toEqual(['MRN-A', 'MRN-B']);
  expect(dicomKeys(d, '/dicom-web/studies?PatientID=MRN-*').mrns).toEqual([]);
});

test.each([
  ['MRN-A', true],
  ['', false],
  ['a\u0000b', false],
  ['\ud800', false],
  ['x'.repeat(257), false],
])('lookupable(%j) is %s: values PostgreSQL cannot hold name no patient', (v, ok) => {
  expect(lookupable(v)).toBe(ok);
});

test('dicomKeys leaves out a PatientID with NUL', () => {
  const d = { kind: 'dicom-query', input: { path: '/studies', query: '' } } as const;
  expect(dicomKeys(d, '/dicom-web/studies?PatientID=%00,MRN-A').mrns).toEqual(['MRN-A']);
});
