import { describe, expect, test } from 'vitest';
import { carriesUrls, forwardedBase, parseForwarded, publicUrlRewrite } from './forwarded-url.ts';

const BASE = 'https://ehr.example.test/imaging';

describe('RFC 7239 Forwarded', () => {
  test.each([
    ['host=a.example;proto=https', { host: 'a.example', proto: 'https' }],
    ['for=10.0.0.1; Host="a.example:8443"; proto=http', { host: 'a.example:8443', proto: 'http' }],
    ['host=a.example, host=b.example;proto=http', { host: 'a.example' }],
    ['for=10.0.0.1', {}],
    ['', {}],
  ])('%s', (header, expected) => {
    expect(parseForwarded(header)).toEqual(expected);
  });
});

describe('the public base a request came through', () => {
  test.each([
    ['not trusted: ignored', false, { 'x-forwarded-host': 'a.example' }, undefined],
    ['no forwarding header', true, { host: 'internal:8000' }, undefined],
    [
      'X-Forwarded-Host and -Proto',
      true,
      { 'x-forwarded-host': 'a.example', 'x-forwarded-proto': 'http' },
      'http://a.example/imaging',
    ],
    [
      'first of several X-Forwarded-Host',
      true,
      { 'x-forwarded-host': 'a.example:8443, b.example' },
      'https://a.example:8443/imaging',
    ],
    [
      'Forwarded wins',
      true,
      { forwarded: 'host=f.example;proto=http', 'x-forwarded-host': 'x.example' },
      'http://f.example/imaging',
    ],
    ['only the proto', true, { 'x-forwarded-proto': 'http' }, 'http://ehr.example.test/imaging'],
    ['IPv6 host', true, { forwarded: 'host="[::1]:8080"' }, 'https://[::1]:8080/imaging'],
    ['the configured one', true, { 'x-forwarded-host': 'ehr.example.test' }, undefined],
    ['a host with a path is ignored', true, { 'x-forwarded-host': 'evil.example/x' }, undefined],
    ['a host with a quote is ignored', true, { 'x-forwarded-host': 'a"b' }, undefined],
    ['another scheme is ignored', true, { 'x-forwarded-proto': 'javascript' }, undefined],
  ])('%s', (_name, trust, headers, expected) => {
    expect(forwardedBase(headers, BASE, trust)).toBe(expected);
  });

  test('the rewrite maps the configured DICOMweb root to the forwarded one', () => {
    expect(publicUrlRewrite({ 'x-forwarded-host': 'a.example' }, BASE, true, '/dicom-web')).toEqual({
      from: 'https://ehr.example.test/imaging/dicom-web/',
      to: 'https://a.example/imaging/dicom-web/',
    });
  });

  test.each([
    ['application/dicom+json', true],
    ['application/json; charset=utf-8', true],
    ['multipart/related; type="application/dicom+xml"; boundary=x', true],
    ['multipart/related; type="application/dicom"; boundary=x', false],
    ['image/jpeg', false],
  ])('rewrite %s: %s', (ct, expected) => {
    expect(carriesUrls(ct)).toBe(expected);
  });
});
