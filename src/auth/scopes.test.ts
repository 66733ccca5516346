import { describe, expect, test } from 'vitest';
import type { Interaction } from './access.ts';
import { narrowScopes, parseResourceScope, parseScopes } from './scopes.ts';

const I = (s: string) => s.split(',').filter(Boolean) as Interaction[];

describe('parseResourceScope', () => {
  test.each([
    // v1
    ['patient/*.read', 'patient', '*', 'read,search', []],
    ['user/Patient.write', 'user', 'Patient', 'create,update,delete', []],
    ['system/*.*', 'system', '*', 'create,read,update,delete,search', []],
    // v2
    ['patient/ImagingStudy.rs', 'patient', 'ImagingStudy', 'read,search', []],
    ['user/*.cruds', 'user', '*', 'create,read,update,delete,search', []],
    ['system/*.rs', 'system', '*', 'read,search', []],
    ['user/Observation.cu', 'user', 'Observation', 'create,update', []],
    ['user/Observation.d', 'user', 'Observation', 'delete', []],
    // granular
    [
      'patient/ImagingStudy.rs?modality=CT',
      'patient',
      'ImagingStudy',
      'read,search',
      [{ code: 'modality', value: 'CT' }],
    ],
    [
      'user/ServiceRequest.rs?code=http://loinc.org|24627-2',
      'user',
      'ServiceRequest',
      'read,search',
      [{ code: 'code', value: 'http://loinc.org|24627-2' }],
    ],
    [
      'user/ImagingStudy.s?modality=CT&status=available',
      'user',
      'ImagingStudy',
      'search',
      [
        { code: 'modality', value: 'CT' },
        { code: 'status', value: 'available' },
      ],
    ],
  ])('%s', (raw, context, type, interactions, restrictions) => {
    const s = parseResourceScope(raw);
    expect(s).toBeDefined();
    expect(s?.context).toBe(context);
    expect(s?.resourceType).toBe(type);
    expect([...(s?.interactions ?? [])].sort()).toEqual(I(interactions).sort());
    expect(s?.restrictions).toEqual(restrictions);
  });

  test.each([
    'patient/*.sr', // v2 letters out of order
    'patient/*.rr', // repeated letter
    'patient/*.x',
    'patient/*.',
    'practitioner/*.read',
    'patient/observation.rs', // resource types start upper-case
    'patient/*.rs?modality', // no value
    'patient/*.rs?=CT',
    'patient/*.rs?modality=',
    'patient/*.rs?mod%ality=CT%', // broken escape
    'patient/Patient.read extra',
    '',
  ])('%j is not a resource scope', (raw) => {
    expect(parseResourceScope(raw)).toBeUndefined();
  });
});

describe('parseScopes', () => {
  test('separates context scopes, resource scopes and unknown ones', () => {
    const p = parseScopes('openid fhirUser launch/patient offline_access patient/*.rs bogus  patient/*.rs');
    expect(p.openid && p.fhirUser && p.launchPatient && p.offlineAccess).toBe(true);
    expect(p.onlineAccess).toBe(false);
    expect(p.resource.map((r) => r.raw)).toEqual(['patient/*.rs']);
    expect(p.unknown).toEqual(['bogus']);
  });
  test('undefined and empty give nothing', () => {
    expect(parseScopes(undefined).resource).toEqual([]);
    expect(parseScopes('').context).toEqual([]);
  });
});

describe('narrowScopes (requested ∩ client ceiling)', () => {
  test.each([
    ['system/*.rs', 'system/*.rs', ['system/*.rs']],
    ['system/*.cruds', 'system/*.rs', ['system/*.rs']],
    ['system/*.read', 'system/Patient.rs system/ImagingStudy.r', ['system/Patient.rs', 'system/ImagingStudy.r']],
    ['system/Patient.rs', 'system/*.rs', ['system/Patient.rs']],
    ['system/Patient.rs', 'patient/*.rs', []],
    ['system/Patient.c', 'system/*.rs', []],
    ['openid fhirUser patient/*.rs', 'patient/*.rs openid', ['openid', 'patient/*.rs']],
    ['patient/ImagingStudy.rs', 'patient/ImagingStudy.rs?modality=CT', ['patient/ImagingStudy.rs?modality=CT']],
    ['patient/ImagingStudy.rs?modality=MR', 'patient/*.rs', ['patient/ImagingStudy.rs?modality=MR']],
    ['launch/patient offline_access', 'launch/patient', ['launch/patient']],
  ])('%s within %s → %j', (requested, ceiling, expected) => {
    expect(narrowScopes(requested, ceiling)).toEqual(expected);
  });
});
