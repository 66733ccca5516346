import { describe, expect, test } from 'vitest';
import type { Interaction } from './access.ts';
import { type Caller, decide, mayAccess, neededPatientSources, type Role } from './policy.ts';
import { parseScopes } from './scopes.ts';

const A = 'pat-a';
const B = 'pat-b';

function user(roles: Role[], scope: string, sets: Caller['patientSets'] = {}): Caller {
  return { scopes: parseScopes(scope), roles, patientSets: sets };
}

/** Callers of the matrix (plus a few), each a row of data. */
const callers: Record<string, Caller> = {
  patientA: { scopes: parseScopes('launch/patient patient/*.rs'), patient: A, roles: [], patientSets: {} },
  patientAWrite: { scopes: parseScopes('patient/*.cruds'), patient: A, roles: [], patientSets: {} },
  patientAAudit: {
    scopes: parseScopes('patient/*.rs patient/AuditEvent.cruds'),
    patient: A,
    roles: [],
    patientSets: {},
  },
  patientScopeNoContext: { scopes: parseScopes('patient/*.rs'), roles: [], patientSets: {} },
  doctorA: user(['doctor'], 'user/*.cruds', { granted: [A] }),
  doctorAReadOnly: user(['doctor'], 'user/*.rs', { granted: [A] }),
  nurseA: user(['nurse'], 'user/*.cruds', { granted: [A] }),
  radiologistA: user(['radiologist'], 'user/*.cruds', { 'imaging-assigned': [A] }),
  auditor: user(['auditor'], 'user/*.cruds'),
  admin: user(['admin'], 'user/*.cruds'),
  adminPatientScopes: user(['admin'], 'patient/*.rs'),
  noRole: user([], 'user/*.cruds'),
  systemA: { scopes: parseScopes('system/*.rs'), roles: [], patientSets: {}, clientPatients: [A] },
  systemAll: { scopes: parseScopes('system/*.rs'), roles: [], patientSets: {}, clientPatients: 'all' },
  userWithSystemScope: user(['doctor'], 'system/*.cruds', { granted: [A] }),
};

type Row = [keyof typeof callers, Interaction, string, string | undefined, boolean];
const rows: Row[] = [
  ['patientA', 'read', 'Patient', A, true],
  ['patientA', 'read', 'Patient', B, false],
  ['patientA', 'search', 'ImagingStudy', A, true],
  ['patientA', 'search', 'ImagingStudy', B, false],
  ['patientA', 'create', 'Observation', A, false],
  ['patientA', 'read', 'AuditEvent', A, false],
  ['patientAWrite', 'search', 'AuditEvent', A, false],
  ['patientAAudit', 'search', 'AuditEvent', A, true],
  ['patientAAudit', 'read', 'AuditEvent', B, false],
  ['patientAAudit', 'create', 'AuditEvent', A, false],
  ['patientAAudit', 'delete', 'AuditEvent', A, false],
  ['patientA', 'read', 'Practitioner', undefined, true],
  ['patientAWrite', 'create', 'Observation', A, true],
  ['patientAWrite', 'create', 'Observation', B, false],
  ['patientAWrite', 'create', 'Practitioner', undefined, false],
  ['patientScopeNoContext', 'read', 'Patient', A, false],
  ['doctorA', 'read', 'Patient', A, true],
  ['doctorA', 'read', 'Patient', B, false],
  ['doctorA', 'delete', 'ServiceRequest', A, true],
  ['doctorA', 'update', 'ServiceRequest', B, false],
  ['doctorA', 'search', 'AuditEvent', A, false],
  ['doctorA', 'read', 'Endpoint', undefined, true],
  ['doctorA', 'create', 'Practitioner', undefined, false],
  ['doctorAReadOnly', 'create', 'Observation', A, false],
  ['nurseA', 'update', 'Encounter', A, true],
  ['nurseA', 'delete', 'Encounter', A, false],
  ['nurseA', 'create', 'Observation', A, true],
  ['nurseA', 'read', 'ImagingStudy', A, true],
  ['nurseA', 'read', 'DiagnosticReport', A, true],
  ['nurseA', 'create', 'ImagingStudy', A, false],
  ['nurseA', 'update', 'ImagingStudy', A, false],
  ['nurseA', 'create', 'DiagnosticReport', A, false],
  ['nurseA', 'update', 'DiagnosticReport', A, false],
  ['radiologistA', 'read', 'ImagingStudy', A, true],
  ['radiologistA', 'update', 'ImagingStudy', A, true],
  ['radiologistA', 'create', 'DiagnosticReport', A, true],
  ['radiologistA', 'create', 'Patient', A, false],
  ['radiologistA', 'read', 'Patient', B, false],
  ['auditor', 'search', 'AuditEvent', B, true],
  ['auditor', 'read', 'Patient', A, false],
  ['auditor', 'create', 'AuditEvent', A, false],
  ['admin', 'delete', 'Patient', B, true],
  ['admin', 'create', 'Practitioner', undefined, true],
  ['admin', 'read', 'AuditEvent', A, true],
  ['adminPatientScopes', 'read', 'Patient', A, false],
  ['noRole', 'read', 'Patient', A, false],
  ['systemA', 'read', 'ImagingStudy', A, true],
  ['systemA', 'read', 'ImagingStudy', B, false],
  ['systemA', 'create', 'ImagingStudy', A, false],
  ['systemAll', 'search', 'ServiceRequest', B, true],
  ['systemAll', 'delete', 'ServiceRequest', B, false],
  ['userWithSystemScope', 'read', 'Patient', A, false],
];

describe('mayAccess: caller × action × type × patient', () => {
  test.each(rows)('%s %s %s of %s → %s', (who, interaction, type, patient, expected) => {
    expect(mayAccess(callers[who]!, interaction, type, patient)).toBe(expected);
  });
});

describe('decide: the patient constraint searches apply', () => {
  test.each([
    ['patientA', 'search', 'Observation', { all: false, patientIds: [A] }],
    ['doctorA', 'search', 'ImagingStudy', { all: false, patientIds: [A] }],
    ['radiologistA', 'search', 'ServiceRequest', { all: false, patientIds: [A] }],
    ['auditor', 'search', 'AuditEvent', { all: true }],
    ['auditor', 'search', 'Patient', { all: false, patientIds: [] }],
    ['admin', 'search', 'Patient', { all: true }],
    ['systemA', 'search', 'Patient', { all: false, patientIds: [A] }],
    ['systemAll', 'search', 'Patient', { all: true }],
    ['doctorA', 'search', 'Practitioner', { all: true }],
  ] as const)('%s %s %s', (who, interaction, type, filter) => {
    expect(decide(callers[who]!, interaction, type).filter).toEqual(filter);
  });

  test('rights from several scopes and roles add up', () => {
    const c: Caller = {
      scopes: parseScopes('user/*.rs patient/*.rs'),
      patient: B,
      roles: ['doctor', 'radiologist'],
      patientSets: { granted: ['p1'], 'imaging-assigned': ['p2', 'p1'] },
    };
    expect(decide(c, 'search', 'ImagingStudy').filter).toEqual({ all: false, patientIds: [B, 'p1', 'p2'].sort() });
  });
});

describe('granular restrictions', () => {
  test.each([
    ['patient/ImagingStudy.rs?modality=CT', 'ImagingStudy', [{ code: 'modality', value: 'CT' }]],
    [
      'patient/ImagingStudy.rs?modality=CT patient/ImagingStudy.rs?modality=MR',
      'ImagingStudy',
      [{ code: 'modality', value: 'CT,MR' }],
    ],
    ['patient/ImagingStudy.rs?modality=CT patient/*.rs', 'ImagingStudy', []],
    [
      'patient/ServiceRequest.rs?code=http://loinc.org|1',
      'ServiceRequest',
      [{ code: 'code', value: 'http://loinc.org|1' }],
    ],
    [
      'patient/ServiceRequest.rs?code=x patient/ServiceRequest.rs?status=active',
      'ServiceRequest',
      [
        { code: 'code', value: 'x' },
        { code: 'status', value: 'active' },
      ],
    ],
    ['patient/ImagingStudy.rs?modality=CT', 'Patient', []],
  ])('%s on %s', (scope, type, restrictions) => {
    const c: Caller = { scopes: parseScopes(scope), patient: A, roles: [], patientSets: {} };
    expect(decide(c, 'search', type).restrictions).toEqual(restrictions);
  });
  test('a restricted scope does not grant other types', () => {
    const c: Caller = {
      scopes: parseScopes('patient/ImagingStudy.rs?modality=CT'),
      patient: A,
      roles: [],
      patientSets: {},
    };
    expect(decide(c, 'search', 'Patient').allowed).toBe(false);
  });
});

test.each([
  [['doctor'], ['granted']],
  [
    ['radiologist', 'nurse'],
    ['imaging-assigned', 'granted'],
  ],
  [['admin', 'auditor'], []],
] as [Role[], string[]][])('roles %j need patient sources %j', (roles, sources) => {
  expect(neededPatientSources(roles).sort()).toEqual([...sources].sort());
});
