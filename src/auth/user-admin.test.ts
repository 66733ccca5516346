import { expect, test } from 'vitest';
import { patientLoginProblem } from './user-admin.ts';

test.each([
  ['a doctor', { roles: ['doctor'] }, undefined],
  ['a patient login', { roles: ['patient'], patient: 'p1' }, undefined],
  ['a patient for a doctor', { roles: ['doctor'], patient: 'p1' }, 'only a patient login names a patient'],
  ['patient and nurse', { roles: ['patient', 'nurse'], patient: 'p1' }, 'a patient login has the patient role only'],
  ['no patient', { roles: ['patient'] }, 'a patient login needs the patient it stands for'],
  [
    'a practitioner',
    { roles: ['patient'], patient: 'p1', practitionerId: 'x' },
    'a patient login has no practitioner or department',
  ],
  [
    'a department',
    { roles: ['patient'], patient: 'p1', department: 'Organization/x' },
    'a patient login has no practitioner or department',
  ],
])('%s', (_name, user, problem) => {
  expect(patientLoginProblem(user)).toBe(problem);
});
