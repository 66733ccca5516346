/**
 * What patients a user reaches now, through their roles: exactly those the policy lets the user read as `Patient`
 * (`user/Patient.r`), the set the launch picker offers. A patient-context token of a user is bounded by it on every
 * request and every refresh (SMART App Launch 2.x leaves the lifetime of a launch context to the server; ours ends
 * when the user loses the patient: a revoked or expired grant, a moved imaging order, a removed role).
 */
import type { DatabasePool } from 'slonik';
import type { PatientFilter } from './access.ts';
import { resolvePatientSets, type UserRecord } from './patient-sets.ts';
import { type Caller, decide, isRole, neededPatientSources, type Role } from './policy.ts';
import { parseScopes } from './scopes.ts';

const PATIENT_READ = parseScopes('user/Patient.r');

/** `client_id` of development tokens minted by `bin/ehr token` (src/auth/local-token.ts). */
export const CLI_CLIENT_ID = 'ehr-cli';

/** The patients `roles` with these resolved patient sets reach. Pure. */
export function reachablePatients(roles: readonly Role[], patientSets: Caller['patientSets']): PatientFilter {
  return decide({ scopes: PATIENT_READ, roles, patientSets }, 'read', 'Patient').filter;
}

export function reaches(filter: PatientFilter, patientId: string): boolean {
  return filter.all || filter.patientIds.includes(patientId);
}

/**
 * Is a user's `patient` claim bounded by the user's reach? Always, except development tokens (`bin/ehr token`, only
 * in development mode) of a user without any role: those stand for the patient themself (tests, local development),
 * and no built-in flow can issue a patient context to a user without a role (the picker offers nobody). Pure.
 */
export function patientClaimBounded(roles: readonly string[], clientId: string | undefined): boolean {
  return roles.length > 0 || clientId !== CLI_CLIENT_ID;
}

/** The user's reach, resolving only the patient sources their roles use. */
export async function userReach(db: DatabasePool, user: UserRecord): Promise<PatientFilter> {
  const roles = user.roles.filter(isRole);
  return reachablePatients(roles, await resolvePatientSets(db, user, neededPatientSources(roles)));
}
