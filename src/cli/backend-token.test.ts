import { describe, expect, test } from 'vitest';
import { decodeProtectedHeader, exportJWK, exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import {
  BackendAuthError,
  BackendTokenSource,
  clientAssertion,
  discoverTokenEndpoint,
  JWT_BEARER,
  loadSigningKey,
  requestToken,
} from './backend-token.ts';

const es384 = await generateKeyPair('ES384', { extractable: true });
const rs = await generateKeyPair('RS384', { extractable: true });
const privEc = { ...(await exportJWK(es384.privateKey)), kid: 'ec-1' };
const pubEc = { ...(await exportJWK(es384.publicKey)), kid: 'ec-1' };
const privRsa = { ...(await exportJWK(rs.privateKey)), kid: 'rsa-1' };
const pem = await exportPKCS8(es384.privateKey);

describe('loadSigningKey', () => {
  test.each([
    ['a private JWK (alg from the curve)', JSON.stringify(privEc), {}, 'ES384', 'ec-1'],
    ['a private RSA JWK (RS384 by default)', JSON.stringify(privRsa), {}, 'RS384', 'rsa-1'],
    ['a JWK with alg', JSON.stringify({ ...privRsa, alg: 'PS256' }), {}, 'PS256', 'rsa-1'],
    ['a JWKS with public and private parts', JSON.stringify({ keys: [pubEc, privEc] }), {}, 'ES384', 'ec-1'],
    ['a JWKS, key chosen by kid', JSON.stringify({ keys: [privEc, privRsa] }), { kid: 'rsa-1' }, 'RS384', 'rsa-1'],
    ['a PEM key with --alg and --kid', pem, { alg: 'ES384', kid: 'pem-1' }, 'ES384', 'pem-1'],
    ['a PEM key without kid', `\n${pem}\n`, { alg: 'ES384' }, 'ES384', undefined],
  ] as const)('%s', async (_name, text, opts, alg, kid) => {
    const key = await loadSigningKey(text, opts);
    expect([key.alg, key.kid, key.key.type]).toEqual([alg, kid, 'private']);
  });

  test.each([
    ['a public JWK', JSON.stringify(pubEc), {}, /no private key/],
    ['a JWKS with two private keys', JSON.stringify({ keys: [privEc, privRsa] }), {}, /several private keys/],
    ['an unknown kid', JSON.stringify({ keys: [privEc] }), { kid: 'nope' }, /no key with kid nope/],
    ['a PEM key without --alg', pem, {}, /needs --alg/],
    ['a PEM key with the wrong --alg', pem, { alg: 'RS384' }, /cannot be used with RS384/],
    ['a traditional EC PEM', '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----', {}, /PKCS#8/],
    ['an HMAC algorithm', JSON.stringify(privEc), { alg: 'HS256' }, /--alg must be one of/],
    ['a symmetric JWK', JSON.stringify({ kty: 'oct', k: 'c2VjcmV0', d: 'x' }), {}, /algorithm of a oct key/],
    ['not a key at all', 'hello', {}, /neither JSON/],
    ['JSON that is no key', '[1,2]', {}, /neither a JWK nor a JWKS/],
  ] as const)('refuses %s', async (_name, text, opts, message) => {
    const err = await loadSigningKey(text, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendAuthError);
    expect((err as Error).message).toMatch(message);
  });
});

test('the client assertion follows RFC 7523 and SMART Backend Services', async () => {
  const key = await loadSigningKey(JSON.stringify(privEc));
  const now = Math.floor(Date.now() / 1000);
  const a = await clientAssertion(key, 'uploader', 'https://ehr.example/auth/token', now);
  const b = await clientAssertion(key, 'uploader', 'https://ehr.example/auth/token', now);
  const { payload } = await jwtVerify(a, es384.publicKey, {
    issuer: 'uploader',
    subject: 'uploader',
    audience: 'https://ehr.example/auth/token',
  });
  expect(decodeProtectedHeader(a)).toEqual({ alg: 'ES384', kid: 'ec-1', typ: 'JWT' });
  expect(payload.exp! - now).toBeLessThanOrEqual(300);
  expect(payload.exp!).toBeGreaterThan(now);
  expect(typeof payload.jti).toBe('string');
  expect((await jwtVerify(b, es384.publicKey)).payload.jti).not.toBe(payload.jti);
});

/** A tiny token endpoint: checks the form and the assertion like ours does, answers tokens `t1`, `t2`, ... */
function tokenEndpoint(answer: (n: number) => { status: number; body: unknown }) {
  const seen: { form: URLSearchParams; claims: Record<string, unknown> }[] = [];
  const fetchFn = (async (_url: string | URL | Request, init?: RequestInit) => {
    const form = new URLSearchParams(String(init?.body));
    const { payload } = await jwtVerify(form.get('client_assertion')!, es384.publicKey, {
      issuer: 'uploader',
      subject: 'uploader',
      audience: 'https://ehr.example/auth/token',
    });
    seen.push({ form, claims: payload });
    const a = answer(seen.length);
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { fetchFn, seen };
}

const client = async () => ({
  clientId: 'uploader',
  key: await loadSigningKey(JSON.stringify(privEc)),
  scope: 'system/ImagingStudy.cs',
  tokenUrl: 'https://ehr.example/auth/token',
});

describe('requestToken', () => {
  test('posts client_credentials with a jwt-bearer assertion and returns the token', async () => {
    const ep = tokenEndpoint(() => ({
      status: 200,
      body: { access_token: 'abc', token_type: 'Bearer', expires_in: 120, scope: 'system/ImagingStudy.c' },
    }));
    expect(await requestToken(await client(), ep.fetchFn)).toEqual({
      accessToken: 'abc',
      scope: 'system/ImagingStudy.c',
      expiresIn: 120,
    });
    const form = ep.seen[0]!.form;
    expect([form.get('grant_type'), form.get('client_assertion_type'), form.get('scope')]).toEqual([
      'client_credentials',
      JWT_BEARER,
      'system/ImagingStudy.cs',
    ]);
  });

  test.each([
    [
      401,
      { error: 'invalid_client', error_description: 'kid unknown' },
      /refused client uploader: invalid_client: kid unknown/,
    ],
    [400, { error: 'invalid_scope' }, /refused client uploader: invalid_scope$/],
    [502, 'bad gateway', /refused client uploader: HTTP 502/],
    [200, { access_token: 'x', token_type: 'mac' }, /without a bearer access_token/],
  ])('HTTP %i %j is a clear error', async (status, body, message) => {
    const ep = tokenEndpoint(() => ({ status, body }));
    await expect(requestToken(await client(), ep.fetchFn)).rejects.toThrow(message);
  });
});

describe('BackendTokenSource', () => {
  test('reuses a token, renews it before it expires and after a refusal, sharing one request', async () => {
    let now = 1_000_000;
    const ep = tokenEndpoint((n) => ({
      status: 200,
      body: { access_token: `t${n}`, token_type: 'bearer', expires_in: 300 },
    }));
    const source = new BackendTokenSource(await client(), { fetch: ep.fetchFn, now: () => now });
    expect(await Promise.all([source.token(), source.token()])).toEqual(['t1', 't1']);
    now += 239_000; // 61 s left: still used
    expect(await source.token()).toBe('t1');
    now += 2_000; // 59 s left: renewed
    expect(await source.token()).toBe('t2');
    source.invalidate('t1'); // an old token: no effect
    expect(await source.token()).toBe('t2');
    source.invalidate('t2');
    expect(await source.token()).toBe('t3');
    expect(new Set(ep.seen.map((s) => s.claims['jti'])).size).toBe(3);
  });

  test('a failed request is not cached', async () => {
    const ep = tokenEndpoint((n) =>
      n === 1
        ? { status: 503, body: {} }
        : { status: 200, body: { access_token: 'ok', token_type: 'Bearer', expires_in: 60 } },
    );
    const source = new BackendTokenSource(await client(), { fetch: ep.fetchFn });
    await expect(source.token()).rejects.toThrow(/HTTP 503/);
    expect(await source.token()).toBe('ok');
  });
});

test.each([
  [200, { token_endpoint: 'https://ehr.example/auth/token' }, 'https://ehr.example/auth/token'],
  [200, { issuer: 'x' }, /gave no token_endpoint \(HTTP 200\); give --token-url/],
  [404, {}, /gave no token_endpoint \(HTTP 404\)/],
  [200, { token_endpoint: 'javascript:alert(1)' }, /gave no token_endpoint/],
])('discovery: HTTP %i %j', async (status, body, expected) => {
  const urls: string[] = [];
  const fetchFn = (async (url: string | URL | Request) => {
    urls.push(String(url));
    return new Response(JSON.stringify(body), { status });
  }) as typeof fetch;
  const result = discoverTokenEndpoint('https://ehr.example/fhir', fetchFn);
  if (typeof expected === 'string') expect(await result).toBe(expected);
  else await expect(result).rejects.toThrow(expected);
  expect(urls).toEqual(['https://ehr.example/fhir/.well-known/smart-configuration']);
});
