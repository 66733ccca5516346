import type { Resource } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { fillPlaceholders, loadProfiles } from './definitions.ts';
import { FhirError } from './errors.ts';
import { validateProfile, validateStructure } from './validate.ts';

const MRN = 'urn:test:mrn';
const ACC = 'urn:test:acc';
const profiles = loadProfiles({ mrnSystem: MRN, accessionSystem: ACC });
const acsn = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] };

function issues(resource: Resource): { status: number; expressions: string[] } | undefined {
  try {
    validateStructure(resource);
    validateProfile(resource, profiles.get(resource.resourceType));
    return undefined;
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    return { status: err.statusCode, expressions: err.issues.flatMap((i) => i.expression ?? []) };
  }
}

describe('our profiles (fhir-profiles/) are enforced with issue.expression', () => {
  test('placeholders are filled from the configuration', () => {
    expect(fillPlaceholders('{{mrnSystem}}|{{other}}', { mrnSystem: 'x' })).toBe('x|{{other}}');
    expect([...profiles.keys()].sort()).toEqual(['ImagingStudy', 'Patient', 'ServiceRequest']);
    expect(JSON.stringify(profiles.get('Patient'))).toContain(MRN);
  });

  const subject = { reference: 'Patient/p' };
  const code = { text: 'CT head' };
  test.each<[string, Resource, { status: number; expressions: string[] } | undefined]>([
    ['Patient with MRN', { resourceType: 'Patient', identifier: [{ system: MRN, value: 'CLI-1' }] }, undefined],
    [
      'Patient without MRN',
      { resourceType: 'Patient', identifier: [{ system: 'urn:x', value: '1' }] },
      { status: 422, expressions: ['Patient.identifier'] },
    ],
    ['Patient without identifiers', { resourceType: 'Patient' }, { status: 422, expressions: ['Patient.identifier'] }],
    [
      'ServiceRequest complete',
      {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject,
        code,
        identifier: [{ system: ACC, type: acsn, value: 'A1' }],
      },
      undefined,
    ],
    [
      'ServiceRequest without code',
      {
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        subject,
        identifier: [{ system: ACC, type: acsn, value: 'A1' }],
      },
      { status: 422, expressions: ['ServiceRequest.code'] },
    ],
    [
      'ServiceRequest without accession',
      { resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject, code },
      { status: 422, expressions: ['ServiceRequest.identifier'] },
    ],
    [
      'ImagingStudy with study UID',
      {
        resourceType: 'ImagingStudy',
        status: 'available',
        subject,
        identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.3' }],
      },
      undefined,
    ],
    [
      'ImagingStudy without study UID',
      { resourceType: 'ImagingStudy', status: 'available', subject, identifier: [{ system: 'urn:x', value: '1' }] },
      { status: 422, expressions: ['ImagingStudy.identifier'] },
    ],
    [
      'structure: bad date is 400',
      { resourceType: 'Patient', birthDate: '2020-13-01' } as Resource,
      { status: 400, expressions: ['Patient.birthDate'] },
    ],
    [
      'structure: unknown element is 400',
      { resourceType: 'Patient', foo: 1 } as unknown as Resource,
      { status: 400, expressions: ['Patient.foo'] },
    ],
  ])('%s', (_name, resource, expected) => {
    const got = issues(resource);
    if (expected === undefined) expect(got).toBeUndefined();
    else expect(got).toEqual({ status: expected.status, expressions: expect.arrayContaining(expected.expressions) });
  });
});
