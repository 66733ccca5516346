import { describe, expect, test } from 'vitest';
import { FhirError } from './errors.ts';
import { assertResourceBody } from './validate.ts';

describe('assertResourceBody: what is refused before the server fills anything in', () => {
  test.each<[string, unknown, RegExp | undefined]>([
    ['a Patient', { resourceType: 'Patient' }, undefined],
    ['a Patient with meta', { resourceType: 'Patient', meta: { tag: [] } }, undefined],
    ['an array', [{ resourceType: 'Patient' }], /JSON object/],
    ['another type', { resourceType: 'Observation' }, /resourceType must be Patient/],
    ['meta a number', { resourceType: 'Patient', meta: -1.5 }, /Patient\.meta|meta must be/],
    ['meta true', { resourceType: 'Patient', meta: true }, /meta must be/],
    ['meta null', { resourceType: 'Patient', meta: null }, /meta must be/],
    ['meta an array', { resourceType: 'Patient', meta: [{}] }, /meta must be/],
  ])('%s', (_name, body, refused) => {
    let err: unknown;
    try {
      assertResourceBody(body, 'Patient');
    } catch (e) {
      err = e;
    }
    if (!refused) expect(err).toBeUndefined();
    else {
      expect(err).toBeInstanceOf(FhirError);
      expect((err as FhirError).statusCode).toBe(400);
      expect(JSON.stringify((err as FhirError).issues)).toMatch(refused);
    }
  });
});
