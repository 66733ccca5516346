/**
 * Who may read AuditEvents (pure). Stricter than a scope check: a scope such as `user/*.rs` never opens the audit
 * trail by itself.
 *
 * - Auditors: a user token of a user with the `auditor` role whose scopes grant AuditEvent reads (e.g.
 *   `user/AuditEvent.rs`) sees every event.
 * - Patients: a patient-context token (SMART `launch/patient`, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)
 *   whose scopes name AuditEvent explicitly (`patient/AuditEvent.rs` or v1 `patient/AuditEvent.read`) sees the events
 *   that have its patient as an entity: who opened my images, and when; redacted to its own compartment (redact.ts).
 * - Nobody else.
 */
import type { Access } from '../auth/access.ts';

export type AuditReadScope =
  | { readonly kind: 'all' }
  | { readonly kind: 'patients'; readonly patientIds: readonly string[] }
  | { readonly kind: 'unauthenticated' }
  | { readonly kind: 'forbidden'; readonly reason: string };

const PATIENT_AUDIT_SCOPE = /^patient\/AuditEvent\.([a-z*]{1,5})(?:\?.*)?$/;

/** Whether a SMART scope grants reading AuditEvents in patient context, naming the type explicitly (v1 or v2). */
export function isPatientAuditScope(scope: string): boolean {
  const perm = PATIENT_AUDIT_SCOPE.exec(scope)?.[1];
  if (!perm) return false;
  return perm === 'read' || perm === '*' || (/^c?r?u?d?s?$/.test(perm) && /[rs]/.test(perm));
}

export function auditReadScope(access: Access | undefined | null): AuditReadScope {
  if (!access) return { kind: 'unauthenticated' };
  const { agent } = access;
  if (access.kind === 'user' && agent.roles.includes('auditor')) {
    if (access.allows('search', 'AuditEvent') && access.allows('read', 'AuditEvent')) return { kind: 'all' };
    return { kind: 'forbidden', reason: 'the token does not grant AuditEvent reads' };
  }
  if (access.kind === 'patient' || access.patientContext) {
    const patient = access.patientContext;
    if (patient && (access.scopes ?? []).some(isPatientAuditScope)) return { kind: 'patients', patientIds: [patient] };
    return { kind: 'forbidden', reason: 'a patient token needs patient/AuditEvent.rs' };
  }
  return { kind: 'forbidden', reason: 'only auditors and patients (for their own events) may read AuditEvents' };
}
