import { describe, expect, test } from 'vitest';
import { cacheControlFor, isReserved, RESERVED_PREFIXES, SPA_ROUTES } from './routes.ts';

describe('isReserved', () => {
  test.each([
    ['/fhir', true],
    ['/fhir/Patient/1', true],
    ['/FHIR/metadata', true],
    ['/dicom-web/studies', true],
    ['/auth/authorize', true],
    ['/api/v1/dicom/viewer-url/1', true],
    ['/healthz', true],
    ['/readyz', true],
    ['/.well-known/openid-configuration', true],
    ['/', false],
    ['/viewer', false],
    ['/fhirish', false],
    ['/apis', false],
    ['/app-config.js', false],
  ])('%s → %s', (path, reserved) => {
    expect(isReserved(path)).toBe(reserved);
  });
});

describe('SPA_ROUTES', () => {
  test.each(SPA_ROUTES.map((r) => [r]))('%s is not under an API prefix', (route) => {
    expect(isReserved(route)).toBe(false);
    expect(route).toMatch(/^\/[A-Za-z-]+$/);
  });

  test('includes the viewer and the OpenID Connect callback', () => {
    expect(SPA_ROUTES).toEqual(expect.arrayContaining(['/viewer', '/callback']));
    expect(RESERVED_PREFIXES).toEqual(expect.arrayContaining(['/fhir', '/dicom-web', '/auth', '/api']));
  });
});

describe('cacheControlFor', () => {
  test.each([
    ['/x/app.bundle.0f6159c501addfe9.js', 'public, max-age=31536000, immutable'],
    ['2493.bundle.c4af70e46357151f.js', 'public, max-age=31536000, immutable'],
    ['0ddf166f7a343eda.wasm', 'public, max-age=31536000, immutable'],
    ['a34f9d1faa5f3315.woff2', 'public, max-age=31536000, immutable'],
    ['index.html', 'no-cache'],
    ['app-config.js', 'no-cache'],
    ['app.bundle.css', 'no-cache'],
    ['sw.js', 'no-cache'],
  ])('%s → %s', (path, expected) => {
    expect(cacheControlFor(path)).toBe(expected);
  });
});
