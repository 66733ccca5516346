import type { Patient } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { subset } from './format.ts';

const p: Patient = {
  resourceType: 'Patient',
  id: '1',
  meta: { versionId: '2' },
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
  name: [{ family: 'A' }],
  gender: 'female',
  photo: [{ contentType: 'image/png' }],
  deceasedBoolean: false,
};

describe('_summary and _elements', () => {
  test.each([
    ['true', undefined, ['deceasedBoolean', 'gender', 'id', 'meta', 'name', 'resourceType']],
    ['text', undefined, ['id', 'meta', 'resourceType', 'text']],
    ['data', undefined, ['deceasedBoolean', 'gender', 'id', 'meta', 'name', 'photo', 'resourceType']],
    [undefined, ['gender'], ['gender', 'id', 'meta', 'resourceType']],
  ] as const)('_summary=%s _elements=%j', (summary, elements, keys) => {
    const out = subset(p, summary, elements ? [...elements] : undefined);
    expect(Object.keys(out).sort()).toEqual(keys);
    expect(out.meta?.tag?.[0]?.code).toBe('SUBSETTED');
  });

  test('no summary leaves the resource alone', () => {
    expect(subset(p, 'false')).toBe(p);
    expect(subset(p, undefined)).toBe(p);
  });
});
