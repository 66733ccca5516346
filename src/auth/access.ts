/**
 * The caller's access context, carried by every request and by the per-request FHIR repository. It is computed from a
 * verified SMART token with the pure access policy (policy.ts); a request without one is refused (deny by default).
 *
 * The FHIR repository and the DICOMweb handlers ask only these questions; they never look at scopes or roles.
 */

/** FHIR interactions as the policy sees them: vread/history are reads, patch is an update. */
export type Interaction = 'read' | 'search' | 'create' | 'update' | 'delete';

/**
 * Which patients' data the caller may touch, to be applied in SQL before paging.
 * `all: true` means no patient constraint; otherwise only resources in these patients' compartments
 * (and, for resource types outside any patient compartment, see {@link Access.allows}).
 */
export type PatientFilter = { readonly all: true } | { readonly all: false; readonly patientIds: readonly string[] };

/** A granular SMART v2 restriction such as `ImagingStudy?modality=CT`: extra search parameters ANDed into queries. */
export interface SearchRestriction {
  readonly code: string;
  readonly value: string;
}

export interface Agent {
  /** `fhirUser` reference or token `sub`. */
  readonly who: string;
  readonly sub: string;
  readonly fhirUser?: string;
  readonly clientId?: string;
  readonly jti?: string;
  readonly roles: readonly string[];
  readonly purposeOfUse?: readonly string[];
}

export interface Access {
  readonly kind: 'user' | 'patient' | 'system' | 'viewer';
  readonly agent: Agent;
  /** Scope-level check: may the caller do `interaction` on `resourceType` at all? */
  allows(interaction: Interaction, resourceType: string): boolean;
  /** The patient constraint for `interaction` on `resourceType`. */
  patientFilter(interaction: Interaction, resourceType: string): PatientFilter;
  /** Granular restrictions (SMART v2 `?param=value` scopes) for `resourceType`; empty when none. */
  restrictions(resourceType: string): readonly SearchRestriction[];
  /** The `patient` launch context of the token, when it has one. */
  readonly patientContext?: string | undefined;
  /** The granted scopes (for audit and introspection). */
  readonly scopes?: readonly string[];
  /**
   * `kind: 'viewer'` only: the StudyInstanceUIDs its imaging is limited to. The study authorization and QIDO-RS apply
   * it like any other constraint (src/auth/imaging-access.ts); routes that do not accept viewer tokens refuse it.
   */
  readonly studies?: readonly string[];
}

/**
 * "May this caller do `interaction` on `resourceType` of patient `patientId`?" — the single question for one resource.
 * `patientId` is undefined for resources outside any patient compartment.
 */
export function allowsPatient(
  access: Access,
  interaction: Interaction,
  resourceType: string,
  patientId: string | undefined,
): boolean {
  if (!access.allows(interaction, resourceType)) return false;
  const f = access.patientFilter(interaction, resourceType);
  if (f.all) return true;
  return patientId !== undefined && f.patientIds.includes(patientId);
}
