import { describe, expect, test } from 'vitest';
import { ConfigError } from '../config/load-config.ts';
import { parseExternalIssuers } from './issuers.ts';
import { bearerToken, bearerTokenIfAny, TokenError, verifyAccessToken } from './verify-token.ts';

describe('bearerToken (RFC 6750 §2.1)', () => {
  test.each([
    [['Authorization', 'Bearer abc.def.ghi'], 'abc.def.ghi'],
    [['authorization', 'bearer abc.def.ghi'], 'abc.def.ghi'],
    [['Host', 'x', 'AUTHORIZATION', 'BEARER  t.o.k '], 't.o.k'],
  ])('%j → %s', (raw, token) => {
    expect(bearerToken(raw)).toBe(token);
  });
  test.each([
    [[], /missing bearer token/],
    [['Host', 'x'], /missing bearer token/],
    [['Authorization', 'abc.def.ghi'], /scheme must be Bearer/],
    [['Authorization', 'Basic dXNlcjpwdw=='], /scheme must be Bearer/],
    [['Authorization', 'Bearer'], /scheme must be Bearer/],
    [['Authorization', 'Bearer a b'], /scheme must be Bearer/],
    [['Authorization', 'Bearer a.b.c', 'authorization', 'Bearer a.b.c'], /more than one/],
  ])('%j is refused', (raw, reason) => {
    expect(() => bearerToken(raw)).toThrow(reason);
    expect(bearerTokenIfAny(raw)).toBeUndefined();
  });
});

describe('verifyAccessToken refuses before any key lookup', () => {
  const none = new Map();
  test.each([
    ['x'.repeat(9000), /too large/],
    ['a.b', /not a compact JWS/],
    ['a.b.c.d.e', /not a compact JWS/],
    ['!!.b.c', /not a compact JWS/],
    ['e30.e30.', /algorithm null not allowed|algorithm/],
  ])('%s', async (token, reason) => {
    await expect(verifyAccessToken(token, none, 0)).rejects.toThrow(TokenError);
    await expect(verifyAccessToken(token, none, 0)).rejects.toThrow(reason);
  });
});

describe('EHR_AUTH_EXTERNAL_ISSUERS', () => {
  test('accepts issuers with a JWKS URL or static keys', () => {
    const list = parseExternalIssuers(
      JSON.stringify([
        { issuer: 'https://kc.example/realms/a', jwksUri: 'https://kc.example/realms/a/certs' },
        { issuer: 'https://ehr.example', jwks: { keys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] }, audience: 'urn:x' },
      ]),
    );
    expect(list.map((i) => i.issuer)).toEqual(['https://kc.example/realms/a', 'https://ehr.example']);
  });
  test.each([
    ['not json', /not valid JSON/],
    ['{}', /must be array/],
    ['[{"issuer":"https://x"}]', /must have required property/],
    ['[{"issuer":"https://x","jwksUri":"https://x/k","jwks":{"keys":[{"kty":"RSA"}]}}]', /exactly one/],
    ['[{"issuer":"ftp://x","jwksUri":"https://x/k"}]', /pattern/],
    ['[{"issuer":"https://x","jwksUri":"https://x/k","extra":1}]', /additional properties/],
  ])('%s is a ConfigError', (json, reason) => {
    expect(() => parseExternalIssuers(json)).toThrow(ConfigError);
    expect(() => parseExternalIssuers(json)).toThrow(reason);
  });
});
