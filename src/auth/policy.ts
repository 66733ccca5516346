/**
 * The one access policy, a pure function of the caller: "may do ACTION on RESOURCE TYPE for PATIENT?" and the patient
 * constraint a search must apply in SQL before paging. Data-driven: the tables below are the policy; the code only
 * combines them. The caller's patient sets (grants, assigned imaging orders, a client's allowed patients) are resolved
 * once per request by `patient-sets.ts` and handed in as data.
 *
 * A right exists only when a SMART scope (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html) AND the
 * table for that scope's context both grant it:
 *   patient/ scopes → the token's `patient` context only;
 *   user/ scopes    → the user's roles ({@link ROLE_RULES});
 *   system/ scopes  → the backend client's allowed patients (only for client tokens without a user).
 * Rights from several scopes add up (union). Everything else is denied.
 */
import type { Interaction, PatientFilter, SearchRestriction } from './access.ts';
import type { ParsedScopes, ResourceScope } from './scopes.ts';
import { scopeCovers } from './scopes.ts';

export const ROLES = ['doctor', 'nurse', 'radiologist', 'auditor', 'admin', 'patient'] as const;
export type Role = (typeof ROLES)[number];

/** Where a role's patients come from (`self`: the Patient a patient login stands for, `users.patient_id`). */
export type PatientSource = 'granted' | 'imaging-assigned' | 'self' | 'all';

export const ALL_INTERACTIONS: readonly Interaction[] = ['read', 'search', 'create', 'update', 'delete'];
const READ: readonly Interaction[] = ['read', 'search'];

/**
 * Resource types outside any patient compartment (shared reference data). They carry no patient, so a patient-limited
 * grant may read and search them but never write them. Every other type, including unknown ones, is treated as
 * patient data and filtered by patient (deny by default).
 */
export const SHARED_TYPES: ReadonlySet<string> = new Set([
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Endpoint',
  'HealthcareService',
  'Medication',
  'Substance',
]);

/** Types only some roles may see at all (not included in `clinical`). */
export const RESTRICTED_TYPES: ReadonlySet<string> = new Set(['AuditEvent']);

/** `clinical` = every type except the restricted ones; `*` = every type. */
export type TypeSet = 'clinical' | '*' | readonly string[];

export interface RoleRule {
  readonly role: Role;
  readonly types: TypeSet;
  /** Types taken out of `types` for this rule. */
  readonly except?: readonly string[];
  readonly interactions: readonly Interaction[];
  readonly patients: PatientSource;
}

/** The role table (docs/authorization.md, "Policy"). A user's rights are the union of the rows of all their roles. */
export const ROLE_RULES: readonly RoleRule[] = [
  { role: 'doctor', types: 'clinical', interactions: ALL_INTERACTIONS, patients: 'granted' },
  { role: 'nurse', types: 'clinical', interactions: READ, patients: 'granted' },
  // Nurses record care (visits, orders, observations) but neither store images nor sign imaging results: no
  // ImagingStudy create/update (a STOW-RS upload, an SR or annotation saved from the viewer) and no DiagnosticReport.
  {
    role: 'nurse',
    types: 'clinical',
    except: ['ImagingStudy', 'DiagnosticReport'],
    interactions: ['create', 'update'],
    patients: 'granted',
  },
  { role: 'radiologist', types: 'clinical', interactions: READ, patients: 'imaging-assigned' },
  {
    role: 'radiologist',
    types: ['ImagingStudy', 'DiagnosticReport', 'Observation'],
    interactions: ['create', 'update'],
    patients: 'imaging-assigned',
  },
  { role: 'auditor', types: ['AuditEvent'], interactions: READ, patients: 'all' },
  { role: 'admin', types: '*', interactions: ALL_INTERACTIONS, patients: 'all' },
  // A patient login reads its own record; its tokens carry patient/ scopes (src/auth/patient-user.ts), this row
  // bounds their patient context and covers development tokens with user/ scopes.
  { role: 'patient', types: 'clinical', interactions: READ, patients: 'self' },
];

/**
 * A patient-context token reaches its patient's compartment plus shared types read-only. Restricted types (AuditEvent)
 * only through a scope that names the type explicitly (`patient/AuditEvent.rs`, never `patient/*.rs`), and read-only:
 * a patient may see the events about themselves ("who opened my images"), nothing else.
 */
function patientContextReaches(scope: ResourceScope, interaction: Interaction, type: string): boolean {
  if (!RESTRICTED_TYPES.has(type)) return true;
  return scope.resourceType === type && READ.includes(interaction);
}

/** The caller as the policy sees it: scopes and context from the token, patient sets resolved from the database. */
export interface Caller {
  readonly scopes: ParsedScopes;
  /** `patient` launch context claim. */
  readonly patient?: string;
  /** The user's roles (empty for clients and patient-only tokens). */
  readonly roles: readonly Role[];
  /** The user's patients per source, resolved for the sources their roles use. */
  readonly patientSets: Partial<Record<Exclude<PatientSource, 'all'>, readonly string[]>>;
  /** Backend client tokens (no user): the client's allowed patients. Absent for user tokens. */
  readonly clientPatients?: 'all' | readonly string[];
  /** A viewer token (src/auth/viewer-token.ts), accepted only where a route accepts viewer tokens. */
  readonly viewer?: true;
  /**
   * A one-study viewer token: its imaging is limited to these StudyInstanceUIDs, on top of what its scopes grant.
   * Absent for every other token (a patient-reach viewer token is bounded by its patient context instead).
   */
  readonly studies?: readonly string[];
}

export interface Decision {
  readonly allowed: boolean;
  readonly filter: PatientFilter;
  readonly restrictions: readonly SearchRestriction[];
}

const NONE: PatientFilter = { all: false, patientIds: [] };
const ALL: PatientFilter = { all: true };

function inTypeSet(set: TypeSet, type: string): boolean {
  if (set === '*') return true;
  if (set === 'clinical') return !RESTRICTED_TYPES.has(type);
  return set.includes(type);
}

function unionFilters(filters: readonly PatientFilter[]): PatientFilter {
  if (filters.some((f) => f.all)) return ALL;
  const ids = new Set<string>();
  for (const f of filters) if (!f.all) for (const id of f.patientIds) ids.add(id);
  return { all: false, patientIds: [...ids].sort() };
}

/** A patient-limited filter on a shared type reads everything but writes nothing. */
function onType(filter: PatientFilter, interaction: Interaction, type: string): PatientFilter | undefined {
  if (!SHARED_TYPES.has(type) || filter.all) return filter;
  return READ.includes(interaction) ? ALL : undefined;
}

/** The patient filter one scope contributes for (interaction, type), or undefined when it contributes nothing. */
function scopeFilter(
  caller: Caller,
  scope: ResourceScope,
  interaction: Interaction,
  type: string,
): PatientFilter | undefined {
  if (!scopeCovers(scope, interaction, type)) return undefined;
  switch (scope.context) {
    case 'patient':
      if (caller.patient === undefined || !patientContextReaches(scope, interaction, type)) return undefined;
      return onType({ all: false, patientIds: [caller.patient] }, interaction, type);
    case 'system':
      if (caller.clientPatients === undefined) return undefined;
      return onType(
        caller.clientPatients === 'all' ? ALL : { all: false, patientIds: caller.clientPatients },
        interaction,
        type,
      );
    case 'user': {
      const filters: PatientFilter[] = [];
      for (const rule of ROLE_RULES) {
        if (!caller.roles.includes(rule.role)) continue;
        if (!inTypeSet(rule.types, type) || rule.except?.includes(type) || !rule.interactions.includes(interaction))
          continue;
        const base =
          rule.patients === 'all' ? ALL : { all: false as const, patientIds: caller.patientSets[rule.patients] ?? [] };
        const f = onType(base, interaction, type);
        if (f) filters.push(f);
      }
      return filters.length > 0 ? unionFilters(filters) : undefined;
    }
  }
}

/**
 * SMART v2 granular restrictions of the scopes that grant (interaction, type). Scopes are alternatives: one unrestricted
 * grant means no restriction; grants restricting the same single parameter merge into a FHIR OR list (`modality=CT,MR`);
 * any other mix is ANDed, which is narrower than asked and never wider (fail closed).
 */
function mergeRestrictions(granting: readonly ResourceScope[]): SearchRestriction[] {
  if (granting.length === 0 || granting.some((s) => s.restrictions.length === 0)) return [];
  const codes = new Set(granting.flatMap((s) => s.restrictions.map((r) => r.code)));
  const [only] = codes;
  if (codes.size === 1 && only !== undefined && granting.every((s) => s.restrictions.length === 1)) {
    const values = [...new Set(granting.map((s) => s.restrictions[0]!.value))];
    return [{ code: only, value: values.join(',') }];
  }
  const out: SearchRestriction[] = [];
  for (const s of granting)
    for (const r of s.restrictions)
      if (!out.some((o) => o.code === r.code && o.value === r.value)) out.push({ code: r.code, value: r.value });
  return out;
}

/** The policy: may `caller` do `interaction` on `type`, on which patients, with which extra search restrictions? */
export function decide(caller: Caller, interaction: Interaction, type: string): Decision {
  const filters: PatientFilter[] = [];
  const granting: ResourceScope[] = [];
  for (const scope of caller.scopes.resource) {
    const f = scopeFilter(caller, scope, interaction, type);
    if (!f) continue;
    filters.push(f);
    granting.push(scope);
  }
  if (filters.length === 0) return { allowed: false, filter: NONE, restrictions: [] };
  return { allowed: true, filter: unionFilters(filters), restrictions: mergeRestrictions(granting) };
}

/** "May caller do `interaction` on `type` for `patientId`?" (`patientId` undefined for shared types). */
export function mayAccess(
  caller: Caller,
  interaction: Interaction,
  type: string,
  patientId: string | undefined,
): boolean {
  const d = decide(caller, interaction, type);
  if (!d.allowed) return false;
  if (d.filter.all) return true;
  return patientId !== undefined && d.filter.patientIds.includes(patientId);
}

/** The patient sources the caller's roles need resolved (so that nothing else is queried). */
export function neededPatientSources(roles: readonly Role[]): Exclude<PatientSource, 'all'>[] {
  const out = new Set<Exclude<PatientSource, 'all'>>();
  for (const r of ROLE_RULES) if (roles.includes(r.role) && r.patients !== 'all') out.add(r.patients);
  return [...out];
}

export function isRole(x: string): x is Role {
  return (ROLES as readonly string[]).includes(x);
}
