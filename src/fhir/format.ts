import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { baseDefinition } from './definitions.ts';
import type { HistoryEntry, SearchPage } from './repository-search.ts';
import { encodeCursor } from './search/cursor.ts';
import type { SearchPlan } from './search/parse.ts';

export type SummaryMode = 'true' | 'text' | 'data' | 'count' | 'false';

/** http://hl7.org/fhir/R4/search.html#summary: a subsetted resource is tagged SUBSETTED. */
const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };
const ALWAYS = new Set(['resourceType', 'id', 'meta']);

const summaryCache = new Map<string, { summary: Set<string>; mandatory: Set<string> }>();

/** Top-level element names of a type flagged isSummary / with min > 0 in the R4 definition. */
function elementSets(type: string) {
  let hit = summaryCache.get(type);
  if (!hit) {
    hit = { summary: new Set(), mandatory: new Set() };
    for (const e of baseDefinition(type).snapshot?.element ?? []) {
      const parts = (e.path ?? '').split('.');
      if (parts.length !== 2) continue;
      const name = (parts[1] ?? '').replace('[x]', '');
      if (e.isSummary) hit.summary.add(name);
      if ((e.min ?? 0) > 0) hit.mandatory.add(name);
    }
    summaryCache.set(type, hit);
  }
  return hit;
}

function keep(resource: Resource, wanted: (key: string) => boolean): Resource {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(resource)) {
    const base = k.replace(/^_/, '');
    const choiceBase = base.replace(/[A-Z].*$/, '');
    if (ALWAYS.has(k) || wanted(base) || wanted(choiceBase)) out[k] = v;
  }
  const r = out as unknown as Resource;
  r.meta = { ...r.meta, tag: [...(r.meta?.tag ?? []), SUBSETTED] };
  return r;
}

/**
 * Applies `_summary` (true/text/data) and `_elements` to a resource (https://hl7.org/fhir/R4/search.html#summary,
 * #elements). Returns the resource unchanged when neither is asked for.
 */
export function subset(resource: Resource, summary?: SummaryMode, elements?: string[]): Resource {
  const sets = elementSets(resource.resourceType);
  if (elements?.length) {
    const wanted = new Set(elements);
    return keep(resource, (k) => wanted.has(k) || sets.mandatory.has(k));
  }
  if (summary === 'true') return keep(resource, (k) => sets.summary.has(k));
  if (summary === 'text') return keep(resource, (k) => k === 'text' || sets.mandatory.has(k));
  if (summary === 'data') return keep(resource, (k) => k !== 'text');
  return resource;
}

function query(pairs: [string, string][]): string {
  return new URLSearchParams(pairs).toString();
}

/** A `searchset` Bundle with `self` and (keyset) `next` links (https://hl7.org/fhir/R4/http.html#paging). */
export function searchBundle(fhirBase: string, plan: SearchPlan, page: SearchPage): Bundle {
  const self = `${fhirBase}/${plan.type}?${query(plan.used)}`;
  const link = [{ relation: 'self', url: self }];
  if (page.prev) link.push({ relation: 'previous', url: `${self}&${query([['_cursor', encodeCursor(page.prev)]])}` });
  if (page.next) link.push({ relation: 'next', url: `${self}&${query([['_cursor', encodeCursor(page.next)]])}` });
  const entry = (r: Resource, mode: 'match' | 'include'): BundleEntry => ({
    fullUrl: `${fhirBase}/${r.resourceType}/${r.id}`,
    resource: subset(r, plan.summary, plan.elements),
    search: { mode },
  });
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    meta: { lastUpdated: new Date().toISOString() },
    ...(page.total === undefined ? {} : { total: page.total }),
    link,
    entry: [...page.matches.map((r) => entry(r, 'match')), ...page.included.map((r) => entry(r, 'include'))],
  };
}

/** A `history` Bundle (https://hl7.org/fhir/R4/http.html#history). */
export function historyBundle(
  fhirBase: string,
  path: string,
  params: [string, string][],
  result: { entries: HistoryEntry[]; next?: { v: string | null; id: string } },
): Bundle {
  const self = `${fhirBase}/${path}${params.length ? `?${query(params)}` : ''}`;
  const link = [{ relation: 'self', url: self }];
  if (result.next) {
    link.push({
      relation: 'next',
      url: `${self}${params.length ? '&' : '?'}${query([['_cursor', encodeCursor(result.next)]])}`,
    });
  }
  return {
    resourceType: 'Bundle',
    type: 'history',
    meta: { lastUpdated: new Date().toISOString() },
    link,
    entry: result.entries.map((e) => {
      const url = `${e.resource.resourceType}/${e.resource.id}`;
      const status = e.deleted ? '204' : e.versionId === 1 ? '201' : '200';
      return {
        fullUrl: `${fhirBase}/${url}`,
        ...(e.deleted ? {} : { resource: e.resource }),
        request: {
          method: e.method === 'PATCH' ? 'PATCH' : e.method,
          url: e.method === 'POST' ? e.resource.resourceType : url,
        },
        response: { status, etag: `W/"${e.versionId}"`, lastModified: e.lastUpdated },
      } as BundleEntry;
    }),
  };
}
