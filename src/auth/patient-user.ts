/**
 * Patient logins (pure): a user with the `patient` role stands for one Patient (`users.patient_id`).
 * Every token the built-in server issues to such a user has that Patient as its launch context (SMART App Launch 2.x
 * `patient` claim, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html), whatever the client asked
 * for, and its resource scopes are the patient-context, read-only form of the granted ones: `user/*.cruds` becomes
 * `patient/*.rs`, `user/AuditEvent.rs` becomes `patient/AuditEvent.rs` (the server may grant other scopes than
 * requested, RFC 6749 §3.3; the token response says which). So a patient signs in to any SMART app, the staff web
 * app included, and reaches their own compartment only, read-only, plus the AuditEvents about them (redacted,
 * src/audit/redact.ts).
 */
import { formatScope, parseScopes } from './scopes.ts';

export const PATIENT_ROLE = 'patient';

/** The user fields this module reads. */
export interface PatientLoginFields {
  readonly roles: readonly string[];
  readonly patientId?: string | null | undefined;
  readonly practitionerId?: string | null | undefined;
}

/** A patient login has a linked Patient; a user with the role but without one (which the users table forbids) is not. */
export function patientOfUser(user: PatientLoginFields): string | undefined {
  return user.roles.includes(PATIENT_ROLE) && user.patientId ? user.patientId : undefined;
}

/** SMART `fhirUser`: the Patient a patient login stands for, else the user's Practitioner, else none. */
export function fhirUserOf(user: PatientLoginFields): string | undefined {
  const patient = patientOfUser(user);
  if (patient) return `Patient/${patient}`;
  return user.practitionerId ? `Practitioner/${user.practitionerId}` : undefined;
}

/**
 * The scopes a patient login is granted for `granted` (already narrowed by the client's ceiling): context scopes as
 * they are; each `user/` or `patient/` resource scope as `patient/` with its read and search rights only (restrictions
 * kept); `system/` scopes and scopes granting no read are dropped. Order kept, duplicates removed.
 */
export function patientLoginScopes(granted: string): string {
  const parsed = parseScopes(granted);
  const out = new Set<string>(parsed.context);
  for (const s of parsed.resource) {
    if (s.context === 'system') continue;
    const reads = new Set([...s.interactions].filter((i) => i === 'read' || i === 'search'));
    if (reads.size === 0) continue;
    out.add(formatScope('patient', s.resourceType, reads, s.restrictions));
  }
  return [...out].join(' ');
}
