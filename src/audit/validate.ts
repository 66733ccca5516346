import { validateResource } from '@medplum/core';
import type { AuditEvent, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { loadDefinitionsFor } from '../fhir/definitions.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A built AuditEvent that breaks the R4 AuditEvent definition (a bug in a builder, never user input). */
export class InvalidAuditEventError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_INVALID_EVENT';
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
  loadDefinitionsFor(event);
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
