import { parseSearchRequest, type SearchRequest } from '@medplum/core';
import { loadDefinitions } from '../definitions.ts';
import { BadRequestError } from '../errors.ts';
import { paramInfo } from '../index-values.ts';
import { type FhirType, isFhirType, RESOURCES, RESULT_PARAMS, type SortColumn } from '../registry.ts';
import { type Cursor, decodeCursor } from './cursor.ts';
import { type DatePrefix, type DateRange, searchDateRange } from './dates.ts';
import { splitOr, splitToken, type TokenValue, unescapeValue } from './normalize.ts';

export type ParamType = 'token' | 'string' | 'date' | 'reference';

/** One parsed search condition; all conditions are ANDed, values inside one condition are ORed. */
export type Condition =
  | { kind: 'id'; values: string[] }
  | { kind: 'lastUpdated'; prefix: DatePrefix; range: DateRange }
  | { kind: 'token'; code: string; not: boolean; values: TokenValue[] }
  | { kind: 'string'; code: string; match: 'prefix' | 'exact' | 'contains'; values: string[] }
  | { kind: 'date'; code: string; prefix: DatePrefix; range: DateRange }
  | { kind: 'reference'; code: string; values: { type: string | undefined; id: string }[] }
  | { kind: 'missing'; code: string; paramType: ParamType; missing: boolean }
  | { kind: 'chain'; code: string; targetType: FhirType; child: Condition };

export interface SortSpec {
  code: string;
  column: 'id' | 'last_updated' | SortColumn;
  descending: boolean;
}

export interface SearchPlan {
  type: FhirType;
  conditions: Condition[];
  sort: SortSpec;
  count: number;
  cursor?: Cursor;
  /** `_include` / `_include:iterate` (https://hl7.org/fhir/R4/search.html#include): `param` of `sourceType`. */
  include: IncludeSpec[];
  revInclude: { sourceType: FhirType; param: string }[];
  summary?: 'true' | 'text' | 'data' | 'count' | 'false';
  elements?: string[];
  total: boolean;
  /** The parameters actually applied (for the Bundle's `self` link), without `_cursor`. */
  used: [string, string][];
}

export interface IncludeSpec {
  sourceType: FhirType;
  param: string;
  /** Only targets of this type (`Type:param:Target`). */
  targetType?: FhirType;
  /** `:iterate`: also applied to the resources included (repeatedly), not only to the matches. */
  iterate: boolean;
}

export interface ParseOptions {
  strict: boolean;
  defaultCount: number;
  maxCount: number;
}

type Query = Record<string, string | string[] | undefined>;

const MODIFIERS: Record<ParamType, readonly string[]> = {
  token: ['missing', 'not'],
  string: ['missing', 'exact', 'contains'],
  date: ['missing'],
  reference: ['missing'],
};
const SUMMARY = new Set(['true', 'false', 'text', 'data', 'count']);

function fail(strict: boolean, message: string, code: string): false {
  if (strict) throw new BadRequestError(message, [code]);
  return false;
}

function referenceTargets(type: FhirType, code: string): FhirType[] {
  return (paramInfo(type, code).definition.target ?? []).filter(isFhirType);
}

/** Parses one condition of `type` (code without modifier, modifier, raw value). Returns undefined to ignore. */
/** A timestamptz value as PostgreSQL prints it (or ±infinity): the only sort value a date cursor may carry. */
export function isTimestampText(v: string): boolean {
  return (
    v === '-infinity' ||
    v === 'infinity' ||
    (/^\d{4}-\d{2}-\d{2}[ T][\d:.+-]+$/.test(v) &&
      !Number.isNaN(Date.parse(v.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'))))
  );
}

/** Splits a date prefix (`ge2020` → ['ge', '2020']); no prefix means `eq`. */
export function splitPrefix(value: string): [DatePrefix, string] {
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)(.*)$/.exec(value);
  return m ? [m[1] as DatePrefix, m[2] as string] : ['eq', value];
}

function parseCondition(
  type: FhirType,
  code: string,
  modifier: string | undefined,
  value: string,
  strict: boolean,
): Condition | undefined {
  if (code === '_id') {
    if (modifier) throw new BadRequestError(`modifier :${modifier} not supported on _id`, ['_id']);
    return { kind: 'id', values: splitOr(value).map(unescapeValue) };
  }
  if (code === '_lastUpdated') {
    if (modifier) throw new BadRequestError(`modifier :${modifier} not supported on _lastUpdated`, [code]);
    const [prefix, date] = splitPrefix(value);
    return { kind: 'lastUpdated', prefix, range: searchDateRange(code, date) };
  }
  const dot = code.indexOf('.');
  if (dot > 0) {
    const [head, typeMod] = code.slice(0, dot).split(':') as [string, string | undefined];
    const rest = code.slice(dot + 1);
    if (!RESOURCES[type].params.includes(head) || paramInfo(type, head).type !== 'reference') {
      fail(strict, `unknown chained parameter ${code}`, code);
      return undefined;
    }
    const targets = typeMod ? (isFhirType(typeMod) ? [typeMod] : []) : referenceTargets(type, head);
    const targetType = targets.length === 1 ? targets[0] : undefined;
    if (!targetType)
      throw new BadRequestError(`chained parameter ${code} needs a single target type (use ${head}:Type.${rest})`, [
        code,
      ]);
    const [childCode, childMod] = rest.split(':') as [string, string | undefined];
    if (childCode.includes('.')) throw new BadRequestError('only one level of chaining is supported', [code]);
    const child = parseCondition(targetType, childCode, childMod, value, true);
    return child ? { kind: 'chain', code: head, targetType, child } : undefined;
  }
  if (!RESOURCES[type].params.includes(code)) {
    fail(strict, `unknown search parameter ${code} for ${type}`, code);
    return undefined;
  }
  const ptype = paramInfo(type, code).type;
  if (modifier && !MODIFIERS[ptype].includes(modifier) && !(ptype === 'reference' && isFhirType(modifier))) {
    throw new BadRequestError(`modifier :${modifier} not supported on ${code}`, [code]);
  }
  if (modifier === 'missing') {
    if (value !== 'true' && value !== 'false')
      throw new BadRequestError(`${code}:missing must be true or false`, [code]);
    return { kind: 'missing', code, paramType: ptype, missing: value === 'true' };
  }
  const values = splitOr(value);
  switch (ptype) {
    case 'token':
      return { kind: 'token', code, not: modifier === 'not', values: values.map(splitToken) };
    case 'string':
      return {
        kind: 'string',
        code,
        match: modifier === 'exact' ? 'exact' : modifier === 'contains' ? 'contains' : 'prefix',
        values: values.map(unescapeValue),
      };
    case 'date': {
      if (values.length > 1) throw new BadRequestError(`one date per ${code} (repeat the parameter for AND)`, [code]);
      const [prefix, date] = splitPrefix(value);
      return { kind: 'date', code, prefix, range: searchDateRange(code, date) };
    }
    case 'reference':
      return {
        kind: 'reference',
        code,
        values: values.map((v) => {
          const parts = unescapeValue(v).split('/');
          const id = parts[parts.length - 1] ?? '';
          const t = modifier ?? (parts.length >= 2 ? parts[parts.length - 2] : undefined);
          return { type: t, id };
        }),
      };
  }
}

function pickSort(type: FhirType, req: SearchRequest, strict: boolean): SortSpec {
  const rules = req.sortRules ?? [];
  if (rules.length > 1) fail(strict, 'only one _sort key is supported', '_sort');
  const rule = rules[0];
  if (!rule) return { code: '_id', column: 'id', descending: false };
  if (rule.code === '_id') return { code: '_id', column: 'id', descending: !!rule.descending };
  if (rule.code === '_lastUpdated')
    return { code: '_lastUpdated', column: 'last_updated', descending: !!rule.descending };
  const column = RESOURCES[type].sorts[rule.code];
  if (column) return { code: rule.code, column, descending: !!rule.descending };
  fail(strict, `cannot sort ${type} by ${rule.code}`, '_sort');
  return { code: '_id', column: 'id', descending: false };
}

/**
 * Parses a FHIR search (query string or `_search` form body) for one of our types into a plan, using
 * @medplum/core's parser for prefixes, result parameters and includes, and validating every parameter against
 * the registry. Unknown parameters are ignored under `handling=lenient` and rejected under `handling=strict`
 * (https://hl7.org/fhir/R4/search.html#errors). Modifiers we do not implement are always rejected.
 */
export function parseSearch(type: FhirType, query: Query, opts: ParseOptions): SearchPlan {
  loadDefinitions();
  let req: SearchRequest;
  try {
    const result = Object.fromEntries(
      Object.entries(query).filter(([k]) => k !== '_include' && (RESULT_PARAMS as readonly string[]).includes(k)),
    );
    req = parseSearchRequest(type, result);
  } catch (err) {
    throw new BadRequestError(err instanceof Error ? err.message : 'invalid search');
  }
  const used: [string, string][] = [];
  const conditions: Condition[] = [];
  for (const [key, raw] of Object.entries(query)) {
    if (raw === undefined) continue;
    const code = key.includes('.') ? key : (key.split(':')[0] ?? '');
    const modifier = key.includes('.') ? undefined : key.split(':').slice(1).join(':') || undefined;
    if ((RESULT_PARAMS as readonly string[]).includes(code)) continue;
    if (code.startsWith('_') && code !== '_id' && code !== '_lastUpdated') {
      fail(opts.strict, `unknown parameter ${key}`, key);
      continue;
    }
    for (const value of Array.isArray(raw) ? raw : [raw]) {
      const c = parseCondition(type, code, modifier, value, opts.strict);
      if (!c) continue;
      conditions.push(c);
      used.push([key, value]);
    }
  }
  const rawCount = query['_count'];
  if (
    rawCount !== undefined &&
    (req.count === null || req.count === undefined || Number.isNaN(req.count) || req.count < 0)
  ) {
    if (req.summary !== undefined) {
      // _summary=count sets count 0 itself
    } else throw new BadRequestError('_count must be a non-negative integer', ['_count']);
  }
  const count = Math.min(req.count ?? opts.defaultCount, opts.maxCount);
  const sort = pickSort(type, req, opts.strict);
  if (sort.code !== '_id' || sort.descending) used.push(['_sort', `${sort.descending ? '-' : ''}${sort.code}`]);
  used.push(['_count', String(count)]);
  const include = parseIncludes(type, query, opts.strict, used);
  const revInclude: { sourceType: FhirType; param: string }[] = [];
  for (const inc of req.revInclude ?? []) {
    const key = `${inc.resourceType}:${inc.searchParam}`;
    if (RESOURCES[type].revIncludes.includes(key) && isFhirType(inc.resourceType) && !inc.modifier) {
      revInclude.push({ sourceType: inc.resourceType, param: inc.searchParam });
      used.push(['_revinclude', key]);
    } else fail(opts.strict, `_revinclude ${key} not supported`, '_revinclude');
  }
  const rawSummary = query['_summary'];
  const summaryValue = Array.isArray(rawSummary) ? rawSummary[0] : rawSummary;
  if (summaryValue !== undefined && !SUMMARY.has(summaryValue))
    throw new BadRequestError('invalid _summary', ['_summary']);
  const summary = summaryValue as SearchPlan['summary'];
  if (summary) used.push(['_summary', summary]);
  if (req.fields) used.push(['_elements', req.fields.join(',')]);
  const plan: SearchPlan = {
    type,
    conditions,
    sort,
    count: summary === 'count' ? 0 : count,
    include,
    revInclude,
    total: req.total === 'accurate' || summary === 'count',
    used,
  };
  if (req.cursor) {
    plan.cursor = decodeCursor(req.cursor);
    if (plan.cursor.v !== null && sort.column !== 'sort_string' && !isTimestampText(plan.cursor.v)) {
      throw new BadRequestError('invalid paging cursor', ['_cursor']);
    }
  }
  if (summary) plan.summary = summary;
  if (req.fields) plan.elements = req.fields;
  return plan;
}

/**
 * `_include`, `_include:iterate` (and R3's `:recurse`): `Source:param`, `Source:param:Target` or `*` (every include
 * of the searched type, https://hl7.org/fhir/R4/search.html#include). Without `:iterate` the source must be the
 * searched type.
 */
function parseIncludes(type: FhirType, query: Query, strict: boolean, used: [string, string][]): IncludeSpec[] {
  const out: IncludeSpec[] = [];
  for (const [key, raw] of Object.entries(query)) {
    const [code, modifier] = key.split(':');
    if (code !== '_include' || raw === undefined) continue;
    if (modifier !== undefined && modifier !== 'iterate' && modifier !== 'recurse') {
      fail(strict, `_include modifier :${modifier} not supported`, key);
      continue;
    }
    const iterate = modifier !== undefined;
    for (const value of Array.isArray(raw) ? raw : [raw]) {
      if (value === '*') {
        for (const param of RESOURCES[type].includes) out.push({ sourceType: type, param, iterate });
        used.push([iterate ? '_include:iterate' : '_include', '*']);
        continue;
      }
      const [source, param, target] = value.split(':');
      const ok =
        source !== undefined &&
        isFhirType(source) &&
        (iterate || source === type) &&
        param !== undefined &&
        (param === '*' || RESOURCES[source].includes.includes(param)) &&
        (target === undefined || isFhirType(target)) &&
        value.split(':').length <= 3;
      if (!ok) {
        fail(strict, `_include ${value} not supported`, key);
        continue;
      }
      const params = param === '*' ? RESOURCES[source].includes : [param];
      for (const p of params) {
        out.push({ sourceType: source, param: p, iterate, ...(target ? { targetType: target as FhirType } : {}) });
      }
      used.push([iterate ? '_include:iterate' : '_include', value]);
    }
  }
  return out;
}
