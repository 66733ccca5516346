/**
 * What each role may do, as the facade's policy says (README "Policy"); the app offers only these actions. The server
 * decides in any case: this only hides what would be refused.
 */
export type Role = 'doctor' | 'nurse' | 'radiologist' | 'auditor' | 'admin';
export type Action =
  | 'patients'
  | 'create-patient'
  | 'write-patient'
  | 'write-visit'
  | 'write-order'
  | 'write-report'
  | 'upload'
  | 'reconcile'
  | 'audit'
  | 'admin';

const TABLE: Record<Action, readonly Role[]> = {
  patients: ['doctor', 'nurse', 'radiologist', 'admin'],
  // A new patient is outside every doctor's and nurse's grants (the server refuses it): only admins register patients.
  'create-patient': ['admin'],
  'write-patient': ['doctor', 'nurse', 'admin'],
  'write-visit': ['doctor', 'nurse', 'admin'],
  'write-order': ['doctor', 'nurse', 'admin'],
  // Nurses record care but neither store images nor sign imaging reports (no ImagingStudy or DiagnosticReport writes).
  'write-report': ['radiologist', 'doctor', 'admin'],
  upload: ['doctor', 'radiologist', 'admin'],
  reconcile: ['radiologist', 'admin'],
  audit: ['auditor'],
  admin: ['admin'],
};

export function may(roles: readonly string[], action: Action): boolean {
  return TABLE[action].some((r) => roles.includes(r));
}
