/**
 * The one reading of a FHIR REST path below the base (FHIR R4 RESTful API, https://hl7.org/fhir/R4/http.html), shared
 * by the scope check (auth/fhir-interaction.ts), the audit's fallback description (audit/context.ts) and Bundle entry
 * URLs (bundle.ts). It classifies by shape only; each caller applies its own rules on names, ids and depth. Pure.
 */

/** What the path addresses. */
export type FhirPathKind =
  /** `` (the base: batch/transaction, system search) */
  | 'system'
  /** `_history` */
  | 'system-history'
  /** `Type` */
  | 'type'
  /** `Type/_search` */
  | 'type-search'
  /** `Type/_history` */
  | 'type-history'
  /** `Type/id` */
  | 'instance'
  /** `Type/id/_history` */
  | 'instance-history'
  /** `Type/id/_history/vid` */
  | 'vread'
  /** `Type/id/Other` (compartment search, e.g. `Patient/123/Observation`) */
  | 'compartment'
  /** any path with a `$operation` segment */
  | 'operation';

export interface FhirPath {
  readonly kind: FhirPathKind;
  /** The first segment (not necessarily a resource type name). */
  readonly type: string | undefined;
  /** The second segment when it can name an instance (does not start with `_` or `$`). */
  readonly id: string | undefined;
  /** The version of a vread. */
  readonly versionId: string | undefined;
  /** The resource type searched in a compartment. */
  readonly compartment: string | undefined;
  /** How many segments the path has (a caller may refuse deeper paths). */
  readonly depth: number;
}

/** Classifies non-empty path segments (already split at `/`, decoded or not as the caller needs). */
export function parseFhirPath(segments: readonly string[]): FhirPath {
  const [type, second, third, fourth] = segments;
  const id = second !== undefined && !second.startsWith('_') && !second.startsWith('$') ? second : undefined;
  const of = (kind: FhirPathKind, more: Partial<FhirPath> = {}): FhirPath => ({
    kind,
    type,
    id,
    versionId: undefined,
    compartment: undefined,
    depth: segments.length,
    ...more,
  });
  if (segments.some((s) => s.startsWith('$'))) return of('operation');
  if (type === undefined) return of('system');
  if (type === '_history') return of('system-history');
  if (second === undefined) return of('type');
  if (second === '_search') return of('type-search');
  if (second === '_history') return of('type-history');
  if (third === '_history') return fourth ? of('vread', { versionId: fourth }) : of('instance-history');
  if (third !== undefined) return of('compartment', { compartment: third });
  return of('instance');
}

/** The non-empty segments of a path. */
export function pathSegments(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}
