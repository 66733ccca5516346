/**
 * System search (https://hl7.org/fhir/R4/http.html#search, `GET [base]?_type=…`): the same search run on each type
 * of `_type` (every type the caller may search when absent), one type after another. A page is filled from the
 * current type and then the next ones; its `next` link carries the type's position and that type's keyset cursor,
 * so paging never repeats or skips entries. Parameters go to each type's search: under `handling=strict` one a type
 * does not support is a 400.
 */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { BadRequestError } from './errors.ts';
import { subset } from './format.ts';
import { type FhirType, isFhirType, RESOURCE_TYPES, RESOURCES } from './registry.ts';
import type { FhirRepository } from './repository.ts';
import { encodeCursor } from './search/cursor.ts';

type Query = Record<string, string | string[] | undefined>;

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** The system cursor: index into the type list and that type's own cursor (null: from its start). */
function decodeSystemCursor(raw: string, types: number): [number, string | null] {
  try {
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(parsed) &&
      Number.isInteger(parsed[0]) &&
      parsed[0] >= 0 &&
      parsed[0] < types &&
      (parsed[1] === null || typeof parsed[1] === 'string')
    ) {
      return [parsed[0] as number, parsed[1] as string | null];
    }
  } catch {
    // fall through
  }
  throw new BadRequestError('invalid paging cursor', ['_cursor']);
}

/** `_include` / `_revinclude` values belong to one type each: every type's search gets only its own. */
function forType(query: Query, type: FhirType): Query {
  const out: Query = { ...query };
  const keep = (key: string, ok: (v: string) => boolean) => {
    const raw = query[key];
    if (raw === undefined) return;
    const kept = (Array.isArray(raw) ? raw : [raw]).filter(ok);
    if (kept.length) out[key] = kept;
    else delete out[key];
  };
  keep('_include', (v) => v === '*' || v.startsWith(`${type}:`));
  keep('_revinclude', (v) => RESOURCES[type].revIncludes.includes(v));
  return out;
}

export async function systemSearch(repo: FhirRepository, query: Query, strict: boolean): Promise<Bundle> {
  const rawTypes = first(query['_type']);
  const named = rawTypes
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of named ?? []) {
    if (!isFhirType(t)) throw new BadRequestError(`_type ${JSON.stringify(t)} is not served here`, ['_type']);
  }
  const types = (named as FhirType[] | undefined) ?? RESOURCE_TYPES.filter((t) => repo.access?.allows('search', t));
  if (!types.length) throw new BadRequestError('no type to search', ['_type']);
  const rest: Query = { ...query };
  delete rest['_type'];
  delete rest['_cursor'];
  const rawCursor = first(query['_cursor']);
  let [index, inner] = rawCursor ? decodeSystemCursor(rawCursor, types.length) : [0, null as string | null];
  const wanted = Number(first(query['_count']) ?? repo.ctx.config.fhirDefaultCount);
  if (!Number.isInteger(wanted) || wanted < 0) throw new BadRequestError('_count must be a non-negative integer');
  const count = Math.min(wanted, repo.ctx.config.fhirMaxCount);
  const matches: Resource[] = [];
  const included: Resource[] = [];
  let next: string | undefined;
  let total = 0;
  let used: [string, string][] = [];
  const withTotal = first(query['_total']) === 'accurate' || first(query['_summary']) === 'count';
  if (withTotal) {
    for (const t of types) {
      total += (await repo.search(t, { ...forType(rest, t), _summary: 'count' }, strict)).page.total ?? 0;
    }
  }
  while (index < types.length && matches.length < count) {
    const type = types[index] as FhirType;
    const q: Query = {
      ...forType(rest, type),
      _count: String(count - matches.length),
      ...(inner ? { _cursor: inner } : {}),
    };
    delete q['_total'];
    const { plan, page } = await repo.search(type, q, strict);
    used = plan.used.filter(([k]) => k !== '_count');
    matches.push(...page.matches.map((r) => subset(r, plan.summary, plan.elements)));
    included.push(...page.included.map((r) => subset(r, plan.summary, plan.elements)));
    if (page.next) {
      inner = encodeCursor(page.next);
      continue;
    }
    index += 1;
    inner = null;
  }
  if (index < types.length) next = Buffer.from(JSON.stringify([index, inner]), 'utf8').toString('base64url');
  const pairs: [string, string][] = [...(named ? [['_type', types.join(',')] as [string, string]] : []), ...used];
  const params = new URLSearchParams([...pairs, ['_count', String(count)]]);
  const self = `${repo.fhirBase}?${params.toString()}`;
  const link = [{ relation: 'self', url: self }];
  if (next) link.push({ relation: 'next', url: `${self}&_cursor=${next}` });
  const entry = (r: Resource, mode: 'match' | 'include'): BundleEntry => ({
    fullUrl: `${repo.fhirBase}/${r.resourceType}/${r.id}`,
    resource: r,
    search: { mode },
  });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    meta: { lastUpdated: new Date().toISOString() },
    ...(withTotal ? { total } : {}),
    link,
    entry: [...matches.map((r) => entry(r, 'match')), ...included.map((r) => entry(r, 'include'))],
  };
}
