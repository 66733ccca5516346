import { describe, expect, test } from 'vitest';
import { authUrls, smartConfiguration } from './discovery.ts';
import { parseForm } from './form.ts';
import { escapeHtml, loginPage } from './pages.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { isValidChallenge, s256, verifyPkce } from './pkce.ts';

describe('PKCE S256 (RFC 7636 appendix B vector)', () => {
  const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  test('the RFC example', () => {
    expect(s256(verifier)).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });
  test.each([
    [verifier, s256(verifier), true],
    [verifier, s256(`${verifier}x`), false],
    ['short', s256('short'), false],
    [undefined, s256(verifier), false],
    [`${verifier}!`, s256(`${verifier}!`), false],
  ])('verifier %s', (v, challenge, ok) => {
    expect(verifyPkce(v, challenge)).toBe(ok);
  });
  test.each([
    ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', true],
    ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c', false],
    ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM', false],
  ])('challenge %s valid: %s', (c, ok) => {
    expect(isValidChallenge(c)).toBe(ok);
  });
});

describe('scrypt passwords', () => {
  test('hash verifies the right password only, with a fresh salt each time', async () => {
    const h = await hashPassword('correct horse');
    expect(h).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await hashPassword('correct horse')).not.toBe(h);
    expect(await verifyPassword('correct horse', h)).toBe(true);
    expect(await verifyPassword('correct hors', h)).toBe(false);
    expect(await verifyPassword('anything', null)).toBe(false);
    expect(await verifyPassword('anything', 'md5$abc')).toBe(false);
  });
});

describe('form bodies (RFC 6749 §3.1)', () => {
  test.each([
    ['a=1&b=2', { a: '1', b: '2' }],
    ['a=1&b=', { a: '1' }],
    ['scope=patient%2F*.rs+openid', { scope: 'patient/*.rs openid' }],
  ])('%s', (body, out) => {
    expect(parseForm(body)).toEqual(out);
  });
  test('a repeated parameter is invalid_request', () => {
    expect(() => parseForm('code=a&code=b')).toThrow(/repeated/);
  });
});

describe('pages escape everything they echo', () => {
  test.each(['<script>', '"><img src=x>', "' onmouseover='x"])('%s', (evil) => {
    const html = loginPage('/auth/authorize', { state: evil }, evil, evil);
    expect(html).not.toContain(evil);
    expect(html).toContain(escapeHtml(evil));
  });
});

describe('SMART configuration (SMART App Launch 2.x conformance)', () => {
  test.each([
    ['https://ehr.example.org', 'https://ehr.example.org/app/authorizations'],
    ['http://127.0.0.1:8000', 'http://127.0.0.1:8000/app/authorizations'],
  ])('%s: management_endpoint is the web app screen of connected apps', (base, expected) => {
    const conf = smartConfiguration(authUrls(base), 'ES256');
    expect(conf['management_endpoint']).toBe(expected);
    expect(conf['revocation_endpoint']).toBe(`${base}/auth/revoke`);
  });
});
