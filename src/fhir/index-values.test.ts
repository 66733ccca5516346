import type { Resource } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { compartmentOf, extractIndex, parseLocalReference } from './index-values.ts';

const base = 'https://ehr.example.org/fhir';

describe('search index extraction from the R4 SearchParameter expressions', () => {
  test('Patient: strings normalised, tokens, dates as ranges, sort keys', () => {
    const p: Resource = {
      resourceType: 'Patient',
      id: 'p1',
      name: [{ family: 'Müller', given: ['Jörg'] }],
      birthDate: '1970-02',
      gender: 'male',
      active: true,
      identifier: [{ system: 'urn:mrn', value: 'CLI-1' }],
    };
    const ix = extractIndex('Patient', p, base);
    expect(ix.strings).toEqual(
      expect.arrayContaining([
        { code: 'family', value: 'muller', exact: 'Müller' },
        { code: 'given', value: 'jorg', exact: 'Jörg' },
        { code: 'name', value: 'muller', exact: 'Müller' },
      ]),
    );
    expect(ix.tokens).toEqual(
      expect.arrayContaining([
        { code: 'identifier', system: 'urn:mrn', value: 'CLI-1' },
        { code: 'gender', system: null, value: 'male' },
        { code: 'active', system: null, value: 'true' },
      ]),
    );
    expect(ix.dates).toEqual([
      { code: 'birthdate', low: new Date('1970-02-01T00:00:00.000Z'), high: new Date('1970-02-28T23:59:59.999Z') },
    ]);
    expect(ix.sortDate).toEqual(new Date('1970-02-01T00:00:00.000Z'));
    expect(ix.sortString).toBe('muller');
    expect(compartmentOf('Patient', 'p1', ix)).toBe('p1');
  });

  test('ImagingStudy: local references only, compartment from the patient reference', () => {
    const s: Resource = {
      resourceType: 'ImagingStudy',
      id: 's1',
      status: 'available',
      subject: { reference: 'Patient/p1' },
      basedOn: [
        { reference: `${base}/ServiceRequest/o1` },
        { reference: 'https://elsewhere.org/fhir/ServiceRequest/x' },
      ],
      endpoint: [{ reference: 'Endpoint/e1' }],
      started: '2020-01-02T03:04:05Z',
      series: [{ uid: '1.2.3', modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' } }],
    };
    const ix = extractIndex('ImagingStudy', s, base);
    expect(ix.references).toEqual(
      expect.arrayContaining([
        { code: 'patient', targetType: 'Patient', targetId: 'p1' },
        { code: 'subject', targetType: 'Patient', targetId: 'p1' },
        { code: 'basedon', targetType: 'ServiceRequest', targetId: 'o1' },
        { code: 'endpoint', targetType: 'Endpoint', targetId: 'e1' },
      ]),
    );
    expect(ix.references.some((r) => r.targetId === 'x')).toBe(false);
    expect(ix.tokens).toEqual(
      expect.arrayContaining([
        { code: 'series', system: null, value: '1.2.3' },
        { code: 'modality', system: 'http://dicom.nema.org/resources/ontology/DCM', value: 'CT' },
      ]),
    );
    expect(compartmentOf('ImagingStudy', 's1', ix)).toBe('p1');
  });

  test.each([
    ['Patient/1', ['Patient', '1']],
    ['Patient/1/_history/2', ['Patient', '1']],
    [`${base}/Patient/abc`, ['Patient', 'abc']],
    ['https://other.org/fhir/Patient/abc', undefined],
    ['#contained', undefined],
    ['urn:uuid:1234', undefined],
    ["Patient/' OR 1=1", undefined],
  ])('parseLocalReference(%j)', (ref, out) => {
    expect(parseLocalReference(ref, base)).toEqual(out);
  });
});
