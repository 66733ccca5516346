import type { AuditEvent } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import { type AuditBase, fhirRestEvent } from './balp.ts';
import { dicomRetrieveEvent } from './balp-dicom.ts';
import { auditIndex } from './chain.ts';
import { dicomKeys, fhirNamed } from './enrich.ts';
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

describe('requested patients: recorded for auditors, never as patients whose data was accessed', () => {
  const base: AuditBase = {
    recorded: '2025-01-02T03:04:05.678Z',
    requestId: 'req-1',
    network: undefined,
    serverBaseUrl: 'https://ehr.example.org',
    agent: undefined,
    outcome: '4',
    outcomeDesc: 'not found',
  };
  test.each<[string, AuditEvent, string[], string[]]>([
    [
      'a denied WADO of B’s study',
      dicomRetrieveEvent({ ...base, denied: true, requestedPatientIds: ['B'] }, { studies: [{ studyUid: '1.2.3' }] }),
      [],
      ['B'],
    ],
    [
      'a denied read drops the patients it was given, keeps the requested',
      fhirRestEvent(
        { ...base, denied: true, requestedPatientIds: ['B'] },
        { interaction: 'read', resourceType: 'Patient', id: 'B', patientIds: ['B'] },
      ),
      [],
      ['B'],
    ],
    [
      'an allowed search: a shown patient is not also requested',
      fhirRestEvent(
        { ...base, outcome: '0', outcomeDesc: undefined, requestedPatientIds: ['A', 'B'] },
        { interaction: 'search-type', resourceType: 'Patient', query: '_id=A,B', patientIds: ['A'] },
      ),
      ['A'],
      ['B'],
    ],
  ])('%s', (_name, event, patientIds, requested) => {
    const ix = auditIndex(event);
    expect(ix.patientIds).toEqual(patientIds);
    expect(ix.requestedPatientIds).toEqual(requested);
    expect(auditEventIssues(event)).toEqual([]);
  });
});
