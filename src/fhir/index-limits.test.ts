import type { Resource } from '@medplum/fhirtypes';
import { expect, test } from 'vitest';
import { FhirError } from './errors.ts';
import { assertIndexable } from './index-limits.ts';
import { extractIndex } from './index-values.ts';
import type { FhirType } from './registry.ts';

const long = 'x'.repeat(101);
test.each([
  ['a short family name', 'Patient', { resourceType: 'Patient', name: [{ family: 'Doe' }] }, undefined],
  ['a long family name', 'Patient', { resourceType: 'Patient', name: [{ family: long }] }, 'Patient.name[0].family'],
  [
    'a long identifier value',
    'Patient',
    { resourceType: 'Patient', identifier: [{ system: 'urn:x', value: 'y' }, { value: long }] },
    'Patient.identifier[1].value',
  ],
  [
    'a long, not indexed, narrative',
    'Patient',
    { resourceType: 'Patient', text: { status: 'generated', div: `<div>${long}</div>` } },
    undefined,
  ],
  [
    'a long code',
    'Encounter',
    { resourceType: 'Encounter', status: 'planned', class: { code: long } },
    'Encounter.class.code',
  ],
])('%s', (_name, type, resource, refusedAt) => {
  const index = extractIndex(type as FhirType, resource as Resource, 'http://x/fhir');
  let err: unknown;
  try {
    assertIndexable(type, resource as Resource, index, 100);
  } catch (e) {
    err = e;
  }
  if (!refusedAt) expect(err).toBeUndefined();
  else {
    expect(err).toBeInstanceOf(FhirError);
    expect((err as FhirError).statusCode).toBe(400);
    expect((err as FhirError).issues[0]?.expression).toEqual([refusedAt]);
  }
});
