/**
 * Base-specification rules that @medplum/core's `validateResource` does not enforce, checked generically from the
 * loaded StructureDefinitions (any served type, contained resources included):
 *  - required bindings (https://hl7.org/fhir/R4/terminologies.html#required): a coded value must come from the value
 *    set, for the value sets r4-terminology.ts could enumerate;
 *  - reference targets (https://hl7.org/fhir/R4/references.html): the type a reference points to (from
 *    `Type/id`, an absolute RESTful URL, or `Reference.type`) must be one the element's `targetProfile` allows;
 *  - contained references (https://hl7.org/fhir/R4/references.html#contained): `#x` must name a contained resource,
 *    and every contained resource must be referenced from the resource (dom-3);
 *  - the narrative XHTML (txt-1, txt-2: narrative.ts);
 *  - extension contexts (https://hl7.org/fhir/R4/extensibility.html#context): a core R4 extension may only be used on
 *    the elements its definition names; extensions we do not know stay allowed;
 *  - the JSON shape (https://hl7.org/fhir/R4/json.html): a complex datatype's value is an object, no string is empty.
 * Each problem is an issue naming the element (FHIRPath-like, e.g. `ServiceRequest.subject`).
 */
import { crawlTypedValue, type InternalTypeSchema, type TypedValueWithPath, toTypedValue } from '@medplum/core';
import type {
  CodeableConcept,
  Coding,
  Extension,
  OperationOutcomeIssue,
  Reference,
  Resource,
} from '@medplum/fhirtypes';
import { checkNarrative, NarrativeError } from './narrative.ts';
import { extensionContexts, requiredBindingValueSets, unversioned } from './r4-terminology.ts';

const SD_BASE = 'http://hl7.org/fhir/StructureDefinition/';

function issue(
  path: string,
  message: string,
  code: OperationOutcomeIssue['code'] = 'structure',
): OperationOutcomeIssue {
  return { severity: 'error', code, diagnostics: message, expression: [path] };
}

/** Instance path → element path: indices dropped (`Patient.name[0].given` → `Patient.name.given`). */
const elementPath = (path: string) => path.replace(/\[\d+\]/g, '');

// ---- required bindings ----------------------------------------------------------------------------------------

function inValueSet(codes: Map<string, Set<string>>, system: string | undefined, code: string | undefined): boolean {
  if (code === undefined) return false;
  if (system !== undefined) return codes.get(system)?.has(code) ?? false;
  for (const set of codes.values()) if (set.has(code)) return true;
  return false;
}

/**
 * Checks the coded values @medplum/core's validator collected under required bindings (`collect.tokens`, keyed by
 * value set URL) against the enumerable value sets; value sets we could not enumerate are not checked.
 */
export function checkRequiredBindings(tokens: Record<string, TypedValueWithPath[]>): OperationOutcomeIssue[] {
  const valueSets = requiredBindingValueSets();
  const out: OperationOutcomeIssue[] = [];
  for (const [vsUrl, values] of Object.entries(tokens)) {
    const url = unversioned(vsUrl);
    const codes = valueSets.get(url);
    if (!codes) continue;
    for (const v of values) {
      let ok = true;
      // A primitive with extensions (`_gender`) arrives as a String object.
      const primitive: unknown = v.value instanceof String ? v.value.valueOf() : v.value;
      if (v.type === 'code' || v.type === 'string' || v.type === 'uri') {
        ok = typeof primitive === 'string' && inValueSet(codes, undefined, primitive);
      } else if (v.type === 'Coding') {
        const c = v.value as Coding;
        ok = inValueSet(codes, c.system, c.code);
      } else if (v.type === 'CodeableConcept') {
        const codings = (v.value as CodeableConcept).coding ?? [];
        ok = codings.some((c) => inValueSet(codes, c.system, c.code));
      }
      if (!ok) {
        const shown = typeof primitive === 'string' ? JSON.stringify(primitive) : 'the value';
        out.push(issue(v.path, `${shown} is not in the required value set ${url}`, 'code-invalid'));
      }
    }
  }
  return out;
}

// ---- references, extensions, narrative -------------------------------------------------------------------------

/** The resource type a reference points to, when it can be told (relative or absolute RESTful URL, or `type`). */
export function referencedType(ref: Reference): string | undefined {
  const r = ref.reference;
  if (typeof r === 'string' && !r.startsWith('#') && !r.startsWith('urn:')) {
    const path = r.split(/[?#]/)[0] ?? '';
    const m = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(path);
    if (m) return m[1];
  }
  return typeof ref.type === 'string' && /^[A-Z][A-Za-z]+$/.test(ref.type) ? ref.type : undefined;
}

/** Data types that are constrained Quantities: a context of `Quantity` covers them. */
const QUANTITY_TYPES = new Set(['Age', 'Count', 'Distance', 'Duration', 'MoneyQuantity', 'SimpleQuantity']);

/**
 * Does an extension context (`Element`, a type, or an element path) admit a host of `hostType`, whose element is
 * known by `hostPaths` (its path in the resource, e.g. `Patient.name`, and its path in its own type's definition,
 * e.g. `ElementDefinition.binding` or `CodeSystem.concept` for a nested concept)?
 */
export function contextAllows(
  context: string,
  hostType: string,
  hostPaths: readonly string[],
  hostIsResource: boolean,
) {
  if (context === 'Element' || context === 'BackboneElement') return true;
  if (context === 'Resource' || context === 'DomainResource') return hostIsResource;
  if (context === hostType || hostPaths.includes(context)) return true;
  if (context === 'Quantity' && QUANTITY_TYPES.has(hostType)) return true;
  // A choice element (`Observation.value[x]`): its host is one of the choices.
  return context.endsWith('[x]') && hostPaths.some((p) => p.startsWith(context.slice(0, -3)));
}

interface Frame {
  type: string;
  path: string;
}

/** The element path of an instance path inside the resource `root` (`Patient.name[0]` → `Patient.name`). */
function resourcePath(path: string, root: Frame | undefined): string {
  return `${root?.type ?? ''}${elementPath(path.slice(root?.path.length ?? 0))}`;
}

/** The extensions on the primitive values of `key` in `parent` (`_key`, `_keyDateTime` for a choice), located. */
export function primitiveExtensions(parent: unknown, key: string, elementType: string | undefined) {
  const out: { extension: Extension; type: string; at: string }[] = [];
  if (!parent || typeof parent !== 'object') return out;
  const choice = key.endsWith('[x]');
  const base = choice ? key.slice(0, -3) : key;
  for (const [k, raw] of Object.entries(parent)) {
    if (!k.startsWith(`_${base}`)) continue;
    const suffix = k.slice(base.length + 1);
    if (choice ? !/^[A-Z]/.test(suffix) : suffix !== '') continue;
    const type = choice ? `${suffix.charAt(0).toLowerCase()}${suffix.slice(1)}` : (elementType ?? '');
    const items: unknown[] = Array.isArray(raw) ? raw : [raw];
    items.forEach((item, i) => {
      const exts = (item as { extension?: unknown } | null)?.extension;
      if (!Array.isArray(exts)) return;
      exts.forEach((extension: Extension, j) => {
        out.push({ extension, type, at: `${k}${Array.isArray(raw) ? `[${i}]` : ''}.extension[${j}]` });
      });
    });
  }
  return out;
}

function checkTyped(resource: Resource): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const contexts = extensionContexts();
  const checkContext = (ext: Extension, hostType: string, hostPaths: string[], isResource: boolean, at: string) => {
    const url = ext?.url;
    const allowed = typeof url === 'string' ? contexts.get(url) : undefined;
    if (!allowed || allowed.some((c) => contextAllows(c, hostType, hostPaths, isResource))) return;
    out.push(issue(at, `extension ${url} may not be used on ${hostPaths[0]} (contexts: ${allowed.join(', ')})`));
  };
  const resources: Frame[] = [];
  const containedTypes = new Map<string, string>();
  for (const c of (resource as { contained?: Resource[] }).contained ?? []) {
    if (typeof c?.id === 'string') containedTypes.set(c.id, c.resourceType);
  }
  crawlTypedValue(toTypedValue(resource), {
    onEnterResource: (_path: string, value: TypedValueWithPath) => {
      resources.push({ type: value.type, path: value.path });
    },
    onExitResource: () => {
      resources.pop();
    },
    visitProperty: (parent, key, _path, values, schema: InternalTypeSchema) => {
      const element = schema.elements[key];
      // Extensions of primitive values (`_birthDate`, `_given[1]`), which the crawl does not visit.
      for (const p of primitiveExtensions(parent.value, key, element?.type[0]?.code)) {
        const hostPaths = [
          resourcePath(`${parent.path}.${key}`, resources[resources.length - 1]),
          `${schema.path}.${key}`,
        ];
        checkContext(p.extension, p.type, hostPaths, false, `${parent.path}.${p.at}`);
      }
      for (const v of values.flat()) {
        if (!v || v.value === undefined) continue;
        // A complex datatype (its code starts upper-case: HumanName, Meta…) is a JSON object; the validator checks
        // the JSON type of primitives only, so `name: [1]` or `meta: true` would otherwise pass.
        if (/^[A-Z]/.test(v.type) && (v.value === null || typeof v.value !== 'object' || Array.isArray(v.value))) {
          out.push(issue(v.path, `expected a JSON object (${v.type}), got ${JSON.stringify(v.value)?.slice(0, 40)}`));
          continue;
        }
        if (v.type === 'Reference') {
          const targets = element?.type.find((t) => t.code === 'Reference')?.targetProfile;
          const ref = v.value as Reference;
          const type = ref.reference?.startsWith('#')
            ? containedTypes.get(ref.reference.slice(1))
            : referencedType(ref);
          if (
            targets?.length &&
            type &&
            !targets.some((t) => t === `${SD_BASE}Resource` || t === `${SD_BASE}${type}`)
          ) {
            const allowed = targets.map((t) => t.replace(SD_BASE, '')).join(', ');
            out.push(issue(v.path, `a reference to ${type} is not allowed here (allowed: ${allowed})`));
          }
        } else if (v.type === 'Extension' && (key === 'extension' || key === 'modifierExtension')) {
          const root = resources[resources.length - 1];
          const isResource = root?.path === parent.path;
          const hostPath = isResource ? parent.type : resourcePath(parent.path, root);
          checkContext(v.value as Extension, parent.type, [hostPath, schema.path], isResource, v.path);
        } else if (key === 'div' && parent.type === 'Narrative' && typeof v.value === 'string') {
          try {
            checkNarrative(v.value);
          } catch (err) {
            if (!(err instanceof NarrativeError)) throw err;
            out.push(issue(v.path, `invalid narrative: ${err.message}`, 'invariant'));
          }
        }
      }
    },
  });
  return out;
}

// ---- contained resources ---------------------------------------------------------------------------------------

/** Every string in `value` with its location, `reference` strings marked. */
function strings(value: unknown, path: string, out: { path: string; value: string; isRef: boolean }[], key = '') {
  if (typeof value === 'string')
    out.push({ path: path.replace(/\.reference$/, ''), value, isRef: key === 'reference' });
  else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      strings(v, `${path}[${i}]`, out, key);
    });
  } else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) strings(v, `${path}.${k}`, out, k);
  return out;
}

/** `#x` references must name a contained resource; contained resources must be referenced (dom-3). */
export function checkContained(resource: Resource): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const type = resource.resourceType;
  const contained = ((resource as { contained?: Resource[] }).contained ?? []).map((r) => r?.id);
  const all = strings(resource, type, []);
  const ids = new Set(contained.filter((id): id is string => typeof id === 'string'));
  for (const s of all) {
    if (s.isRef && s.value.startsWith('#') && s.value !== '#' && !ids.has(s.value.slice(1))) {
      out.push(issue(s.path, `contained reference ${s.value} has no contained resource with id ${s.value.slice(1)}`));
    }
  }
  const used = new Set(all.filter((s) => s.value.startsWith('#')).map((s) => s.value.slice(1)));
  const containers = (resource as { contained?: Resource[] }).contained ?? [];
  const refersToContainer = (i: number) => strings(containers[i], '', []).some((s) => s.isRef && s.value === '#');
  contained.forEach((id, i) => {
    if (typeof id === 'string' && !used.has(id) && !refersToContainer(i)) {
      out.push(
        issue(
          `${type}.contained[${i}]`,
          `contained resource ${id} is not referenced from the resource (dom-3)`,
          'invariant',
        ),
      );
    }
  });
  return out;
}

/**
 * Empty strings anywhere (https://hl7.org/fhir/R4/json.html: a property value is never empty); the validator reads
 * `""` as absent, so `telecom: ""` would otherwise be stored as it is.
 */
export function checkEmptyStrings(
  value: unknown,
  path: string,
  out: OperationOutcomeIssue[] = [],
): OperationOutcomeIssue[] {
  if (value === '') out.push(issue(path, 'empty strings are not allowed; leave the element out instead'));
  else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkEmptyStrings(v, `${path}[${i}]`, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkEmptyStrings(v, `${path}.${k}`, out);
  }
  return out;
}

/** All the checks of this module on one resource (after @medplum/core's structural validation). */
export function checkConformance(
  resource: Resource,
  tokens: Record<string, TypedValueWithPath[]>,
): OperationOutcomeIssue[] {
  return [
    ...checkEmptyStrings(resource, resource.resourceType),
    ...checkRequiredBindings(tokens),
    ...checkContained(resource),
    ...checkTyped(resource),
  ];
}
