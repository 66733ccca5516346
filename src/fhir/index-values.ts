import {
  convertToSearchableStrings,
  convertToSearchableTokens,
  evalFhirPathTyped,
  type FhirPathAtom,
  getParsedExpressionForResourceType,
  getSearchParameter,
  type TypedValue,
  toTypedValue,
} from '@medplum/core';
import type { HumanName, Period, Reference, Resource, SearchParameter } from '@medplum/fhirtypes';
import { loadDefinitions } from './definitions.ts';
import { type FhirType, RESOURCES } from './registry.ts';
import { dateRange } from './search/dates.ts';
import { normalizeString } from './search/normalize.ts';

export interface TokenRow {
  code: string;
  system: string | null;
  value: string;
}
export interface StringRow {
  code: string;
  /** Normalised (lower case, no accents) for default and `:contains` matching. */
  value: string;
  /** As written, for `:exact`. */
  exact: string;
}
export interface DateRow {
  code: string;
  low: Date;
  high: Date;
}
export interface ReferenceRow {
  code: string;
  targetType: string;
  targetId: string;
}

export interface IndexValues {
  tokens: TokenRow[];
  strings: StringRow[];
  dates: DateRow[];
  references: ReferenceRow[];
  /** Sort keys (see registry `sorts`). */
  sortDate: Date | null;
  sortString: string;
}

/** A parsed search parameter: its R4 definition and FHIRPath expression restricted to one resource type. */
export interface ParamInfo {
  readonly code: string;
  readonly type: 'token' | 'string' | 'date' | 'reference';
  readonly definition: SearchParameter;
  readonly atom: FhirPathAtom;
}

const infoCache = new Map<string, ParamInfo>();

/** The definition of a supported search parameter (cached; loads the R4 definitions on first use). */
export function paramInfo(type: FhirType, code: string): ParamInfo {
  const key = `${type}.${code}`;
  const hit = infoCache.get(key);
  if (hit) return hit;
  loadDefinitions();
  const definition = getSearchParameter(type, code);
  if (!definition?.expression) throw new Error(`no R4 search parameter ${key}`);
  const t = definition.type;
  if (t !== 'token' && t !== 'string' && t !== 'date' && t !== 'reference') throw new Error(`unsupported type ${t}`);
  const info: ParamInfo = {
    code,
    type: t,
    definition,
    atom: getParsedExpressionForResourceType(type, definition.expression),
  };
  infoCache.set(key, info);
  return info;
}

/** `Type/id` (optionally `.../_history/n`, optionally under our own base URL) → [type, id]; else undefined. */
export function parseLocalReference(reference: string, fhirBase: string): [string, string] | undefined {
  let ref = reference;
  if (/^https?:\/\//.test(ref)) {
    if (!ref.startsWith(`${fhirBase}/`)) return undefined;
    ref = ref.slice(fhirBase.length + 1);
  }
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/.exec(ref);
  return m ? [m[1] as string, m[2] as string] : undefined;
}

function stringsOf(values: TypedValue[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    if (v.type === 'HumanName') {
      const n = v.value as HumanName;
      for (const s of [n.text, n.family, ...(n.given ?? []), ...(n.prefix ?? []), ...(n.suffix ?? [])])
        if (s) out.push(s);
    } else out.push(...convertToSearchableStrings([v]).filter((s): s is string => typeof s === 'string'));
  }
  return out;
}

function rangesOf(values: TypedValue[]): { low: Date; high: Date }[] {
  const out: { low: Date; high: Date }[] = [];
  for (const v of values) {
    if (typeof v.value === 'string') {
      const r = dateRange(v.value);
      if (r) out.push(r);
    } else if (v.type === 'Period') {
      const p = v.value as Period;
      const start = p.start ? dateRange(p.start) : undefined;
      const end = p.end ? dateRange(p.end) : undefined;
      if (start || end) {
        out.push({ low: start?.low ?? new Date(-8.64e15), high: end?.high ?? new Date(8.64e15) });
      }
    }
  }
  return out;
}

/**
 * Extracts the search index rows of a resource for the parameters the registry lists, by evaluating their R4
 * FHIRPath expressions. Only local references (relative, or under our own base) are indexed.
 */
export function extractIndex(type: FhirType, resource: Resource, fhirBase: string): IndexValues {
  const def = RESOURCES[type];
  const out: IndexValues = { tokens: [], strings: [], dates: [], references: [], sortDate: null, sortString: '' };
  const input = [toTypedValue(resource)];
  for (const code of def.params) {
    const info = paramInfo(type, code);
    const values = evalFhirPathTyped(info.atom, input);
    if (info.type === 'token') {
      for (const t of convertToSearchableTokens(values)) {
        if (t.value !== undefined && t.value !== '')
          out.tokens.push({ code, system: t.system ?? null, value: t.value });
      }
    } else if (info.type === 'string') {
      for (const s of stringsOf(values)) out.strings.push({ code, value: normalizeString(s), exact: s });
    } else if (info.type === 'date') {
      for (const r of rangesOf(values)) out.dates.push({ code, ...r });
    } else {
      for (const v of values) {
        const ref = (v.value as Reference | undefined)?.reference;
        const local = typeof ref === 'string' ? parseLocalReference(ref, fhirBase) : undefined;
        if (local) out.references.push({ code, targetType: local[0], targetId: local[1] });
      }
    }
  }
  for (const [code, column] of Object.entries(def.sorts)) {
    if (column === 'sort_date') {
      const lows = out.dates.filter((d) => d.code === code).map((d) => d.low.getTime());
      out.sortDate = lows.length ? new Date(Math.max(Math.min(...lows), -8e15)) : null;
    } else {
      out.sortString = out.strings.find((s) => s.code === code)?.value ?? '';
    }
  }
  return out;
}

/** The compartment owner (Patient id) of a resource, from its index rows. */
export function compartmentOf(type: FhirType, id: string, index: IndexValues): string | null {
  const how = RESOURCES[type].compartment;
  if (how === 'self') return id;
  if (how === 'patient') {
    return index.references.find((r) => r.code === 'patient' && r.targetType === 'Patient')?.targetId ?? null;
  }
  return null;
}
