import { describe, expect, test } from 'vitest';
import { escapeLike, hasNul, normalizeString, splitOr, splitToken } from './normalize.ts';

describe('string normalisation (case and accents ignored)', () => {
  test.each([
    ['Müller', 'muller'],
    ['ÉLODIE', 'elodie'],
    ['Çağlar', 'caglar'],
    ['  Smith ', 'smith'],
    ["' OR 1=1 --", "' or 1=1 --"],
    ['abc\u202e', 'abc\u202e'],
  ])('%j → %j', (input, output) => {
    expect(normalizeString(input)).toBe(output);
  });

  test.each([
    ['50%', '50\\%'],
    ['a_b', 'a\\_b'],
    ['back\\slash', 'back\\\\slash'],
    ['%00', '\\%00'],
    ['plain', 'plain'],
  ])('escapeLike(%j) = %j', (input, output) => {
    expect(escapeLike(input)).toBe(output);
  });

  test('NUL is detected', () => {
    expect(hasNul('a\u0000b')).toBe(true);
    expect(hasNul('%00')).toBe(false);
  });
});

describe('search value syntax (https://hl7.org/fhir/R4/search.html#escaping)', () => {
  test.each([
    ['a,b', ['a', 'b']],
    ['a\\,b', ['a\\,b']],
    ['a', ['a']],
    [',', ['', '']],
  ])('splitOr(%j) = %j', (input, parts) => {
    expect(splitOr(input)).toEqual(parts);
  });

  test.each([
    ['code', { system: undefined, code: 'code' }],
    ['sys|code', { system: 'sys', code: 'code' }],
    ['|code', { system: null, code: 'code' }],
    ['sys|', { system: 'sys', code: undefined }],
    ['a\\|b', { system: undefined, code: 'a|b' }],
    ['http://x|a|b', { system: 'http://x', code: 'a|b' }],
  ])('splitToken(%j)', (input, token) => {
    expect(splitToken(input)).toEqual(token);
  });
});
