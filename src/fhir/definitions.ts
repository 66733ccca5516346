import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { indexSearchParameterBundle, indexStructureDefinitionBundle, isDataTypeLoaded } from '@medplum/core';
import type { ElementDefinition, Resource, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { CORE_FILE, listResourceDefinitions, parseNdjson, readResourceDefinition } from './r4-subset.ts';

/** Folder of our StructureDefinitions (differentials; snapshots are generated at load). */
export const profilesDir = fileURLToPath(new URL('../../fhir-profiles/', import.meta.url));

let loaded = false;
let available: Set<string> | undefined;
const baseDefinitions = new Map<string, StructureDefinition>();

function index(sds: StructureDefinition[]): void {
  indexStructureDefinitionBundle(sds);
  for (const sd of sds) if (sd.snapshot) baseDefinitions.set(sd.id ?? sd.type, sd);
}

/**
 * Indexes the R4 StructureDefinitions and SearchParameters the facade uses (data types, the resource types it serves,
 * writes or answers with: see r4-subset.ts) into @medplum/core, once per process (validateResource, the search
 * parameter lookups and FHIRPath all read these global indexes). Other resource types are indexed on demand by
 * {@link loadDefinitionsFor}.
 */
export function loadDefinitions(): void {
  if (loaded) return;
  const all = parseNdjson<StructureDefinition | SearchParameter>(readFileSync(CORE_FILE, 'utf8'));
  index(all.filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition'));
  indexSearchParameterBundle({
    resourceType: 'Bundle',
    type: 'collection',
    entry: all.filter((r) => r.resourceType === 'SearchParameter').map((resource) => ({ resource })),
  });
  loaded = true;
}

/** The `resourceType` of `value` and of every resource nested in it (contained resources, Bundle entries, ...). */
function resourceTypes(value: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(value)) {
    for (const v of value) resourceTypes(v, out);
  } else if (value && typeof value === 'object') {
    const rt = (value as { resourceType?: unknown }).resourceType;
    if (typeof rt === 'string') out.add(rt);
    for (const v of Object.values(value)) if (v && typeof v === 'object') resourceTypes(v, out);
  }
  return out;
}

/**
 * {@link loadDefinitions}, plus the definitions of any other R4 resource type in `resource` (e.g. a contained Location
 * in an Encounter), read from `src/fhir/r4/resources.ndjson` and indexed for the rest of the process. A type R4 does
 * not know stays unknown, and validation reports it.
 */
export function loadDefinitionsFor(resource: Resource): void {
  loadDefinitions();
  for (const type of resourceTypes(resource, new Set())) {
    if (isDataTypeLoaded(type)) continue;
    available ??= listResourceDefinitions();
    if (!available.has(type)) continue;
    const sd = readResourceDefinition(type);
    if (sd) index([sd]);
  }
}

/** The base R4 StructureDefinition of a resource or data type (after {@link loadDefinitions}). */
export function baseDefinition(type: string): StructureDefinition {
  loadDefinitions();
  const sd = baseDefinitions.get(type);
  if (!sd) throw new Error(`no base StructureDefinition for ${type}`);
  return sd;
}

/** Replaces `{{name}}` placeholders (e.g. the configured MRN system) in a profile's text. */
export function fillPlaceholders(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (m, name: string) => values[name] ?? m);
}

const MERGE_SKIP = new Set(['id', 'path']);

function mergeInto(target: ElementDefinition, diff: ElementDefinition): ElementDefinition {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(diff)) if (!MERGE_SKIP.has(k)) out[k] = v;
  return out as unknown as ElementDefinition;
}

/**
 * Generates a snapshot from a differential over the base snapshot: element overrides by id, and slices
 * (`Path:slice` with children from the sliced data type's snapshot, then `Path:slice.child` overrides).
 * Enough for our constraint-only profiles (cardinality, patterns, slicing by pattern); not a general generator.
 */
export function generateSnapshot(profile: StructureDefinition): ElementDefinition[] {
  const base = baseDefinition(profile.type ?? '');
  const elements = structuredClone(base.snapshot?.element ?? []);
  for (const d of profile.differential?.element ?? []) {
    const at = elements.findIndex((e) => e.id === d.id);
    if (at >= 0) {
      elements[at] = mergeInto(elements[at] as ElementDefinition, d);
      continue;
    }
    if (!d.sliceName || d.id !== `${d.path}:${d.sliceName}`)
      throw new Error(`profile ${profile.id}: unknown element ${d.id}`);
    const sliced = elements.find((e) => e.id === d.path);
    if (!sliced) throw new Error(`profile ${profile.id}: no element ${d.path} to slice`);
    const typeCode = sliced.type?.[0]?.code ?? '';
    const children = (baseDefinition(typeCode).snapshot?.element ?? []).slice(1).map((c) => {
      const rest = (c.path ?? '').slice(typeCode.length + 1);
      return { ...structuredClone(c), id: `${d.id}.${rest}`, path: `${d.path}.${rest}` } as ElementDefinition;
    });
    const { slicing: _ignored, ...sliceBase } = sliced;
    let last = elements.length - 1;
    while (last >= 0) {
      const id = elements[last]?.id ?? '';
      if (id === d.path || id.startsWith(`${d.path}.`) || id.startsWith(`${d.path}:`)) break;
      last--;
    }
    elements.splice(last + 1, 0, mergeInto({ ...sliceBase, id: d.id } as ElementDefinition, d), ...children);
  }
  return elements;
}

/** Reads our profiles from `fhir-profiles/`, fills placeholders and generates their snapshots. Keyed by type. */
export function loadProfiles(values: Record<string, string>, dir = profilesDir): Map<string, StructureDefinition> {
  loadDefinitions();
  const profiles = new Map<string, StructureDefinition>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const profile = JSON.parse(fillPlaceholders(readFileSync(`${dir}${file}`, 'utf8'), values)) as StructureDefinition;
    profile.snapshot = { element: generateSnapshot(profile) };
    profiles.set(profile.type ?? '', profile);
  }
  return profiles;
}
