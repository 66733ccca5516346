/**
 * What the demo loads (development only): one login per role, three patients with a visit and imaging orders, and
 * which orders get images. Every record carries an identifier in {@link DEMO_SYSTEM}, so a second run finds it
 * (FHIR conditional create, https://hl7.org/fhir/R4/http.html#ccreate) instead of adding a copy.
 */

/** Identifier system of every demo resource: marks it as demo data. */
export const DEMO_SYSTEM = 'urn:ehr-demo';

export type DemoRole = 'doctor' | 'nurse' | 'radiologist' | 'auditor' | 'admin' | 'patient';

export interface DemoUser {
  username: string;
  displayName: string;
  role: DemoRole;
  /** Demo key of the Practitioner the user is (doctor, radiologist). */
  practitioner?: string;
  /** Demo keys of the patients the user is granted (doctor, nurse). */
  grants?: string[];
  /** The patient a patient login (role `patient`) stands for. */
  patient?: string;
}

export interface DemoPatient {
  key: string;
  family: string;
  given: string;
  gender: 'male' | 'female';
  birthDate: string;
}

export interface DemoOrder {
  key: string;
  patient: string;
  /** LOINC code and display of the procedure. */
  code: string;
  display: string;
  /** The images uploaded for it: a generated CT phantom or a pydicom test file; none for a pending order. */
  images?: { kind: 'ct-phantom' } | { kind: 'pydicom'; file: string };
}

export const DEMO_USERS: readonly DemoUser[] = [
  { username: 'demo-admin', displayName: 'Demo Admin', role: 'admin' },
  {
    username: 'demo-doctor',
    displayName: 'Dr Demo Doctor',
    role: 'doctor',
    practitioner: 'pr-doctor',
    grants: ['p1', 'p2', 'p3'],
  },
  { username: 'demo-nurse', displayName: 'Demo Nurse', role: 'nurse', grants: ['p1'] },
  {
    username: 'demo-radiologist',
    displayName: 'Dr Demo Radiologist',
    role: 'radiologist',
    practitioner: 'pr-radiologist',
  },
  { username: 'demo-auditor', displayName: 'Demo Auditor', role: 'auditor' },
  { username: 'demo-patient', displayName: 'Ada Lovelace (patient)', role: 'patient', patient: 'p1' },
];

export const DEMO_PATIENTS: readonly DemoPatient[] = [
  { key: 'p1', family: 'Lovelace', given: 'Ada', gender: 'female', birthDate: '1965-12-10' },
  { key: 'p2', family: 'Turing', given: 'Alan', gender: 'male', birthDate: '1952-06-23' },
  { key: 'p3', family: 'Hopper', given: 'Grace', gender: 'female', birthDate: '1946-12-09' },
];

export const DEMO_ORDERS: readonly DemoOrder[] = [
  { key: 'o1', patient: 'p1', code: '30799-1', display: 'CT Head WO contrast', images: { kind: 'ct-phantom' } },
  { key: 'o2', patient: 'p2', code: '24590-2', display: 'MR Brain', images: { kind: 'pydicom', file: 'MR_small.dcm' } },
  { key: 'o3', patient: 'p3', code: '24627-2', display: 'CT Chest', images: { kind: 'pydicom', file: 'CT_small.dcm' } },
  { key: 'o4', patient: 'p3', code: '24627-2', display: 'CT Chest (follow-up, not yet performed)' },
];

export interface DemoReport {
  key: string;
  /** The order it reports on (its study is the report's imagingStudy). */
  order: string;
  conclusion: string;
}

/** Final radiology reports (DiagnosticReport), written as the demo radiologist. */
export const DEMO_REPORTS: readonly DemoReport[] = [
  {
    key: 'r1',
    order: 'o1',
    conclusion: 'No acute intracranial abnormality. Symmetric ventricles; no mass effect. (Demo phantom study.)',
  },
];

/** The order whose viewer link `make up` prints. */
export const SHOWCASE_ORDER = 'o1';
