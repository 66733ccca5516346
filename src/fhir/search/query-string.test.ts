import { expect, test } from 'vitest';
import { FhirError } from '../errors.ts';
import { assertStrictQuery, strictDecode } from './query-string.ts';

test.each([
  ['a', 'a'],
  ['a+b', 'a b'],
  ['%C3%A9', 'é'],
  ['é', 'é'],
  ['%2500', '%00'],
  ['%ZZ', undefined],
  ['%C3%28', undefined],
  ['%E', undefined],
  ['%ED%A0%80', undefined],
])('strictDecode(%j)', (raw, decoded) => {
  expect(strictDecode(raw)).toBe(decoded);
});

test.each([
  ['name=smith&_count=10', undefined],
  ['', undefined],
  ['name=%00', /NUL.*name/],
  ['na%00me=x', /NUL/],
  ['family=%C3%28', /family/],
  ['name=%ZZ', /name/],
  [`name=${'a'.repeat(101)}`, /longer than 100/],
  [`name=${'a'.repeat(100)}`, undefined],
  ['%ZZ=1', /parameter name/],
])('assertStrictQuery(%j)', (raw, refused) => {
  let err: unknown;
  try {
    assertStrictQuery(raw, 100);
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
