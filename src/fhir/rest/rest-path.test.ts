import { describe, expect, test } from 'vitest';
import { parseFhirPath, pathSegments } from './rest-path.ts';

describe('parseFhirPath: what a FHIR REST path addresses', () => {
  test.each([
    ['', { kind: 'system', depth: 0 }],
    ['_history', { kind: 'system-history', type: '_history' }],
    ['Patient', { kind: 'type', type: 'Patient' }],
    ['Patient/_search', { kind: 'type-search', type: 'Patient', id: undefined }],
    ['Patient/_history', { kind: 'type-history', type: 'Patient', id: undefined }],
    ['Patient/p1', { kind: 'instance', type: 'Patient', id: 'p1', depth: 2 }],
    ['Patient/p1/_history', { kind: 'instance-history', id: 'p1' }],
    ['Patient/p1/_history/3', { kind: 'vread', id: 'p1', versionId: '3', depth: 4 }],
    ['Patient/p1/ImagingStudy', { kind: 'compartment', id: 'p1', compartment: 'ImagingStudy' }],
    ['Patient/p1/$everything', { kind: 'operation', id: 'p1' }],
    ['Patient/$validate', { kind: 'operation', id: undefined }],
    ['$export', { kind: 'operation', type: '$export' }],
    ['Patient/_foo', { kind: 'instance', id: undefined }],
    ['Patient/p1/_history/3/x', { kind: 'vread', depth: 5 }],
  ])('%j', (path, want) => {
    expect(parseFhirPath(pathSegments(path))).toMatchObject(want);
  });

  test('empty segments are dropped', () => {
    expect(pathSegments('/Patient//p1/')).toEqual(['Patient', 'p1']);
  });
});
