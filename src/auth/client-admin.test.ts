import { describe, expect, test } from 'vitest';
import {
  type ClientSpec,
  ClientSpecError,
  clientChangeFromBody,
  clientFromBody,
  clientProblems,
} from './client-admin.ts';

const PUBLIC: ClientSpec = {
  clientId: 'app',
  name: 'App',
  kind: 'public',
  redirectUris: ['https://app.example/cb'],
  scopeCeiling: 'openid fhirUser user/*.rs',
  jwks: null,
  jwksUri: null,
  allowedPatients: null,
  active: true,
};
const KEY = { kty: 'EC', crv: 'P-384', x: 'x', y: 'y' };

describe('clientProblems', () => {
  test.each<[string, Partial<ClientSpec>, RegExp | null]>([
    ['a public client with a redirect', {}, null],
    ['loopback http', { redirectUris: ['http://localhost:8080/cb'] }, null],
    ['plain http elsewhere', { redirectUris: ['http://app.example/cb'] }, /must be https/],
    ['a fragment', { redirectUris: ['https://app.example/cb#x'] }, /fragment/],
    ['a relative URI', { redirectUris: ['/cb'] }, /absolute/],
    ['no redirect', { redirectUris: [] }, /needs a redirect URI/],
    ['a bad id', { clientId: 'a b' }, /clientId/],
    ['an unknown scope', { scopeCeiling: 'openid user/*.zz' }, /unknown scope/],
    ['an empty ceiling', { scopeCeiling: '' }, /empty/],
    ['a public client with keys', { jwksUri: 'https://k.example/jwks' }, /no keys/],
    ['a confidential client without keys', { kind: 'confidential' }, /needs jwks/],
    ['a confidential client with a JWKS', { kind: 'confidential', jwks: { keys: [KEY] } }, null],
    ['private keys', { kind: 'confidential', jwks: { keys: [{ ...KEY, d: 'secret' }] } }, /private keys/],
    ['an http JWKS URL', { kind: 'confidential', jwksUri: 'http://k.example/jwks' }, /https/],
    ['a backend client', { kind: 'backend', redirectUris: [], jwksUri: 'https://k.example/jwks' }, null],
    ['a backend client with a redirect', { kind: 'backend', jwksUri: 'https://k.example/jwks' }, /no redirect/],
    ['allowed patients on a public client', { allowedPatients: ['p1'] }, /only backend/],
  ])('%s', (_name, change, problem) => {
    const problems = clientProblems({ ...PUBLIC, ...change });
    if (problem === null) expect(problems).toEqual([]);
    else expect(problems.join('; ')).toMatch(problem);
  });
});

describe('client bodies', () => {
  test.each<[string, unknown, RegExp]>([
    ['an unknown member', { ...PUBLIC, secret: 'x' }, /unknown member\(s\): secret/],
    ['a string for a boolean', { ...PUBLIC, active: 'true' }, /wrong type or value: active/],
    ['an unknown kind', { ...PUBLIC, kind: 'trusted' }, /wrong type or value: kind/],
    ['a missing scope ceiling', { clientId: 'a', kind: 'public' }, /missing member\(s\): scopeCeiling/],
    ['an array', [], /JSON object/],
  ])('a new client with %s is refused', (_name, body, message) => {
    expect(() => clientFromBody(body)).toThrow(ClientSpecError);
    expect(() => clientFromBody(body)).toThrow(message);
  });

  test('a valid new client reads with defaults', () => {
    const { name: _n, ...body } = PUBLIC;
    expect(clientFromBody(body)).toMatchObject({ name: 'app', active: true });
  });

  test.each<[string, unknown, RegExp]>([
    ['the client id', { clientId: 'other' }, /unknown member\(s\): clientId/],
    ['nothing', {}, /nothing to change/],
    ['a number for redirect URIs', { redirectUris: 1 }, /wrong type/],
  ])('a change of %s is refused', (_name, body, message) => {
    expect(() => clientChangeFromBody(body)).toThrow(message);
  });
});
