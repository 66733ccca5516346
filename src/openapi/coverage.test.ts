import { describe, expect, test } from 'vitest';
import { defaultTag, documentedRoute, knownUndocumented } from './coverage.ts';

describe('documentedRoute', () => {
  test.each([
    { url: '/api/v1/dicom/upload', documented: true, known: false },
    { url: '/auth/token', documented: true, known: false },
    { url: '/healthz', documented: true, known: false },
    { url: '/metrics', documented: true, known: false },
    { url: '/metricsx', documented: false, known: false },
    { url: '/fhir/:type', documented: false, known: true },
    { url: '/fhir/.well-known/smart-configuration', documented: false, known: true },
    { url: '/dicom-web/studies', documented: false, known: true },
    { url: '/docs/', documented: false, known: true },
    { url: '/openapi.json', documented: false, known: true },
    { url: '/app/*', documented: false, known: true },
    { url: '/apple', documented: false, known: false },
  ])('$url', ({ url, documented, known }) => {
    expect(documentedRoute(url)).toBe(documented);
    expect(knownUndocumented(url)).toBe(known);
  });
  test('viewer files are left out wherever they are', () => {
    expect(documentedRoute('/api/v1/x', { ohif: { kind: 'spa' } })).toBe(false);
    expect(knownUndocumented('/viewer', { ohif: { kind: 'spa' } })).toBe(true);
  });
});

describe('defaultTag', () => {
  test.each([
    ['/api/v1/admin/users', 'admin'],
    ['/api/v1/dicom/upload', 'dicom'],
    ['/auth/token', 'authorization'],
    ['/metrics', 'operations'],
  ])('%s → %s', (url, tag) => {
    expect(defaultTag(url)).toBe(tag);
  });
});
