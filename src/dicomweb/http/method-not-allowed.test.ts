import { describe, expect, test } from 'vitest';
import { allowHeader, missingMethods } from './method-not-allowed.ts';

describe('Allow header and the methods answered 405', () => {
  test.each([
    [['GET', 'HEAD', 'POST'], 'GET, HEAD, POST', ['PUT', 'DELETE', 'PATCH']],
    [['POST', 'GET', 'HEAD'], 'GET, HEAD, POST', ['PUT', 'DELETE', 'PATCH']],
    [['GET', 'HEAD'], 'GET, HEAD', ['POST', 'PUT', 'DELETE', 'PATCH']],
    [['POST'], 'POST', ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH']],
  ])('%j', (methods, allow, missing) => {
    expect(allowHeader(new Set(methods))).toBe(allow);
    expect(missingMethods(new Set(methods))).toEqual(missing);
  });
});
