import { randomUUID } from 'node:crypto';
import { multipartBody, STOW_TYPE } from '../../helpers/stow.ts';
import { ctSeries, newUid } from './ct-phantom.ts';

/**
 * The per-role walk of the staff web app as data: what each role is offered (menus, steps of the daily path), and
 * for each step it is not offered, a request to the API that must be refused.
 */

export type Role = 'doctor' | 'nurse' | 'radiologist' | 'auditor' | 'admin';

export interface Allowed {
  /** Register a new patient. */
  readonly createPatient: boolean;
  /** Add visits and orders. */
  readonly writeOrders: boolean;
  /** Upload images (STOW-RS). */
  readonly upload: boolean;
  /** Write a radiology report (DiagnosticReport). */
  readonly report: boolean;
  /** Work the reconciliation queue. */
  readonly reconcile: boolean;
  /** Read the audit trail in the app. */
  readonly audit: boolean;
  /** Users, roles, grants and clients. */
  readonly administer: boolean;
}

export interface RoleCase {
  readonly role: Role;
  readonly user: string;
  /** Family name of the role's prepared patient (and Practitioner). */
  readonly family: string;
  readonly menus: readonly string[];
  readonly hidden: readonly string[];
  readonly may: Allowed;
  /** Whether the API lets the role read AuditEvents although the app does not offer it (admins: policy `*`). */
  readonly readsAuditApi: boolean;
}

const NONE: Allowed = {
  createPatient: false,
  writeOrders: false,
  upload: false,
  report: false,
  reconcile: false,
  audit: false,
  administer: false,
};

export const WALKS: readonly RoleCase[] = [
  {
    role: 'doctor',
    user: 'role-doctor',
    family: 'Roledoctor',
    menus: ['Patients', 'Upload'],
    hidden: ['Reconciliation', 'Audit', 'Administration'],
    may: { ...NONE, writeOrders: true, upload: true, report: true },
    readsAuditApi: false,
  },
  {
    role: 'nurse',
    user: 'role-nurse',
    family: 'Rolenurse',
    menus: ['Patients'],
    hidden: ['Upload', 'Reconciliation', 'Audit', 'Administration'],
    may: { ...NONE, writeOrders: true },
    readsAuditApi: false,
  },
  {
    role: 'radiologist',
    user: 'role-radiologist',
    family: 'Roleradiologist',
    menus: ['Patients', 'Upload', 'Reconciliation'],
    hidden: ['Audit', 'Administration'],
    may: { ...NONE, upload: true, report: true, reconcile: true },
    readsAuditApi: false,
  },
  {
    role: 'auditor',
    user: 'role-auditor',
    family: 'Roleauditor',
    menus: ['Audit'],
    hidden: ['Patients', 'Upload', 'Reconciliation', 'Administration'],
    may: { ...NONE, audit: true },
    readsAuditApi: true,
  },
  {
    role: 'admin',
    user: 'role-admin',
    family: 'Roleadmin',
    menus: ['Patients', 'Upload', 'Reconciliation', 'Administration'],
    hidden: ['Audit'],
    may: {
      ...NONE,
      createPatient: true,
      writeOrders: true,
      upload: true,
      report: true,
      reconcile: true,
      administer: true,
    },
    readsAuditApi: true,
  },
];

export interface Refusal {
  readonly what: string;
  readonly request: {
    method: 'GET' | 'POST' | 'PUT';
    url: string;
    headers?: Record<string, string>;
    payload?: string | Buffer;
  };
  /** Whether the answer is the refusal expected (a 4xx, never a 5xx, nothing written). */
  readonly refused: (status: number, body: string) => boolean;
}

const FHIR = { 'content-type': 'application/fhir+json' };
const is403 = (status: number) => status === 403;

/** The requests that stand for the steps `c` is not offered, each with the refusal it must get. */
export function apiRefusals(c: RoleCase, may: Allowed, patientId: string): Refusal[] {
  const subject = { reference: `Patient/${patientId}` };
  const out: Refusal[] = [];
  const fhirPost = (what: string, body: object) =>
    out.push({
      what,
      request: {
        method: 'POST',
        url: `/fhir/${(body as { resourceType: string }).resourceType}`,
        headers: FHIR,
        payload: JSON.stringify(body),
      },
      refused: is403,
    });
  if (!may.createPatient) fhirPost('create a patient', { resourceType: 'Patient', name: [{ family: 'Refused' }] });
  if (!may.writeOrders) {
    fhirPost('add a visit', {
      resourceType: 'Encounter',
      status: 'arrived',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject,
    });
    fhirPost('create an order', { resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject });
  }
  if (!may.report)
    fhirPost('write a report', {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '18748-4' }] },
      subject,
    });
  if (!may.upload) {
    const boundary = `b-${randomUUID()}`;
    const file = ctSeries({
      patientId: 'REFUSED-MRN',
      patientName: 'Refused^Upload',
      studyInstanceUid: newUid(),
      slices: 1,
      size: 16,
    }).files;
    out.push({
      what: 'upload images',
      request: {
        method: 'POST',
        url: '/dicom-web/studies',
        headers: { accept: 'application/dicom+json', 'content-type': STOW_TYPE(boundary) },
        payload: multipartBody(file, boundary),
      },
      // PS3.18 §10.5.3: nothing stored, the instance refused with 0x0124 (not authorized), or the request refused.
      refused: (status, body) =>
        status === 403 || (status >= 400 && status < 500 && /"00081197"[^}]*\b292\b/.test(body)),
    });
  }
  if (!may.reconcile)
    out.push({
      what: 'the reconciliation queue',
      request: { method: 'GET', url: '/api/v1/dicom/unmatched' },
      refused: is403,
    });
  if (!may.audit && !c.readsAuditApi)
    out.push({ what: 'the audit trail', request: { method: 'GET', url: '/fhir/AuditEvent' }, refused: is403 });
  if (!may.administer) {
    out.push({ what: 'list users', request: { method: 'GET', url: '/api/v1/admin/users' }, refused: is403 });
    out.push({
      what: 'change roles',
      request: {
        method: 'PUT',
        url: '/api/v1/admin/users/role-target/roles',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ roles: ['admin'] }),
      },
      refused: is403,
    });
  }
  return out;
}
