import { OperationOutcomeError, type TypedValueWithPath, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { checkConformance } from './conformance.ts';
import { loadDefinitionsFor } from './definitions.ts';
import { BadRequestError, FhirError, StructureError } from './errors.ts';

function issuesOf(err: unknown): OperationOutcomeIssue[] | undefined {
  return err instanceof OperationOutcomeError ? err.outcome.issue : undefined;
}

/**
 * Structural validation against the R4 definitions (@medplum/core `validateResource`): unknown elements, wrong
 * JSON types, invalid dates, missing required elements, invariants; then the base rules of conformance.ts that it
 * does not enforce (required bindings, reference targets, contained references, narrative, extension contexts).
 * Failure is a 400 with the issues, each naming its element.
 */
export function validateStructure(resource: Resource): void {
  loadDefinitionsFor(resource);
  const tokens: Record<string, TypedValueWithPath[]> = {};
  try {
    validateResource(resource, { collect: { tokens } });
  } catch (err) {
    const issues = issuesOf(err);
    if (issues) throw new StructureError(issues, 400);
    throw err;
  }
  const issues = checkConformance(resource, tokens);
  if (issues.length) throw new StructureError(issues, 400);
}

/**
 * Validation against one of our profiles (`fhir-profiles/`). Failure is a 422 whose issues carry `expression`
 * pointing at the element (e.g. `Patient.identifier`).
 */
export function validateProfile(resource: Resource, profile: StructureDefinition | undefined): void {
  if (!profile) return;
  loadDefinitionsFor(resource);
  try {
    validateResource(resource, { profile });
  } catch (err) {
    const issues = issuesOf(err);
    if (!issues) throw err;
    const tagged = issues.map((i) => ({
      ...i,
      diagnostics: `${i.details?.text ?? i.diagnostics ?? 'profile violation'} (profile ${profile.url})`,
    }));
    throw new StructureError(tagged, 422);
  }
}

/** Every `reference` string in a resource with a FHIRPath-like location (contained resources included). */
export function collectReferences(value: unknown, path: string, out: { path: string; reference: string }[] = []) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      collectReferences(v, `${path}[${i}]`, out);
    });
  } else if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    if (typeof obj['reference'] === 'string') out.push({ path, reference: obj['reference'] });
    for (const [k, v] of Object.entries(obj)) if (k !== 'reference') collectReferences(v, `${path}.${k}`, out);
  }
  return out;
}

/** A body that is not a JSON object of the expected resourceType is a 400 before anything else happens. */
export function assertResourceBody(body: unknown, type: string): asserts body is Resource {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestError('the body must be a FHIR resource (a JSON object)');
  }
  const rt = (body as { resourceType?: unknown }).resourceType;
  if (rt !== type) {
    throw new FhirError(400, 'invalid', `resourceType must be ${type} (got ${JSON.stringify(rt ?? null)})`, [
      'resourceType',
    ]);
  }
  // The server fills in meta before validating, so a malformed one is refused here rather than silently replaced.
  const meta = (body as { meta?: unknown }).meta;
  if (meta !== undefined && (meta === null || typeof meta !== 'object' || Array.isArray(meta))) {
    throw new FhirError(400, 'structure', `meta must be a JSON object (Meta), got ${JSON.stringify(meta)}`, [
      `${type}.meta`,
    ]);
  }
}
