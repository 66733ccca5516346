import { describe, expect, test } from 'vitest';
import { CLI_CLIENT_ID, patientClaimBounded, reachablePatients, reaches } from './patient-reach.ts';
import type { Caller, Role } from './policy.ts';
import { issuedAfter } from './resolve-caller.ts';

const A = 'pat-a';
const B = 'pat-b';

describe('reachablePatients: the patients a user reaches through their roles now', () => {
  test.each<[string, Role[], Caller['patientSets'], string, boolean]>([
    ['doctor granted A', ['doctor'], { granted: [A] }, A, true],
    ['doctor granted A, asking B', ['doctor'], { granted: [A] }, B, false],
    ['doctor whose grant was revoked', ['doctor'], { granted: [] }, A, false],
    ['nurse granted A', ['nurse'], { granted: [A] }, A, true],
    ['radiologist assigned A', ['radiologist'], { 'imaging-assigned': [A] }, A, true],
    ['radiologist whose order moved away', ['radiologist'], { 'imaging-assigned': [] }, A, false],
    ['admin', ['admin'], {}, B, true],
    ['auditor (AuditEvent only)', ['auditor'], {}, A, false],
    ['no role', [], {}, A, false],
    ['doctor + radiologist: the union', ['doctor', 'radiologist'], { granted: [B], 'imaging-assigned': [A] }, A, true],
  ])('%s → reaches %s: %s', (_name, roles, sets, patient, expected) => {
    expect(reaches(reachablePatients(roles, sets), patient)).toBe(expected);
  });
});

describe('patientClaimBounded: whose patient claim is rechecked', () => {
  test.each<[string, string[], string | undefined, boolean]>([
    ['a launch token of a doctor', ['doctor'], 'my-app', true],
    ['a viewer token', ['radiologist'], 'ehr-viewer-link', true],
    ['a development token of a doctor', ['doctor'], CLI_CLIENT_ID, true],
    ['a launch token of a user who lost every role', [], 'my-app', true],
    ['a development token of a user without roles (the patient themself)', [], CLI_CLIENT_ID, false],
  ])('%s → %s', (_name, roles, clientId, expected) => {
    expect(patientClaimBounded(roles, clientId)).toBe(expected);
  });
});

describe('issuedAfter: tokens of a deactivated user', () => {
  test.each<[string, unknown, number | null | undefined, boolean]>([
    ['never deactivated', 100, null, true],
    ['never deactivated, no iat', undefined, undefined, true],
    ['issued before', 99, 100, false],
    ['issued in the same second (refused: the grain is one second)', 100, 100, false],
    ['issued after', 101, 100, true],
    ['no iat once deactivated', undefined, 100, false],
    ['iat not a number', '101', 100, false],
  ])('%s', (_name, iat, notBefore, expected) => {
    expect(issuedAfter(iat, notBefore)).toBe(expected);
  });
});
