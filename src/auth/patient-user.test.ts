import { describe, expect, test } from 'vitest';
import { fhirUserOf, patientLoginScopes, patientOfUser } from './patient-user.ts';

describe('patientLoginScopes', () => {
  test.each([
    [
      'the web app',
      'openid fhirUser online_access user/*.cruds user/AuditEvent.rs',
      'openid fhirUser online_access patient/*.rs patient/AuditEvent.rs',
    ],
    ['v1 read', 'user/*.read', 'patient/*.rs'],
    ['v1 write grants nothing', 'user/Patient.write', ''],
    ['v1 star', 'user/Observation.*', 'patient/Observation.rs'],
    ['write only dropped', 'user/*.cud launch/patient', 'launch/patient'],
    ['restrictions kept', 'user/ImagingStudy.rs?modality=CT', 'patient/ImagingStudy.rs?modality=CT'],
    ['patient scopes stay read-only', 'patient/*.cruds', 'patient/*.rs'],
    ['system scopes dropped', 'system/*.rs openid', 'openid'],
    ['duplicates merged', 'user/*.rs patient/*.rs', 'patient/*.rs'],
  ])('%s', (_name, granted, expected) => {
    expect(patientLoginScopes(granted)).toBe(expected);
  });
});

describe('patient logins', () => {
  test.each([
    ['patient login', { roles: ['patient'], patientId: 'p1' }, 'p1', 'Patient/p1'],
    ['role without a patient', { roles: ['patient'], patientId: null }, undefined, undefined],
    ['doctor', { roles: ['doctor'], practitionerId: 'd1' }, undefined, 'Practitioner/d1'],
    ['no role', { roles: [] }, undefined, undefined],
  ])('%s', (_name, user, patient, fhirUser) => {
    expect(patientOfUser(user)).toBe(patient);
    expect(fhirUserOf(user)).toBe(fhirUser);
  });
});
