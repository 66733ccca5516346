/**
 * `Patient/{id}/$everything` (https://hl7.org/fhir/R4/patient-operation-everything.html): the Patient, every resource
 * of its compartment that the caller may search, and the resources outside compartments (practitioners,
 * organizations, locations, endpoints) they reference. Each part goes through the caller's repository, so the
 * access scope and granular restrictions apply as for a search. `_type` limits the types, `_since` the
 * last-updated time. The whole answer is one `searchset` page (bounded by {@link EVERYTHING_LIMIT}).
 */
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { BadRequestError, UnprocessableError } from './errors.ts';
import { type FhirType, isFhirType, RESOURCE_TYPES, RESOURCES } from './registry.ts';
import type { FhirRepository } from './repository.ts';
import { encodeCursor } from './search/cursor.ts';

/** Most resources one $everything answer holds; beyond it the client narrows with `_type` or `_since`. */
export const EVERYTHING_LIMIT = 5000;

const first = (q: Record<string, string[] | string | undefined>, k: string) => {
  const v = q[k];
  return Array.isArray(v) ? v[0] : v;
};

function referencedIds(resources: readonly Resource[]): Map<FhirType, Set<string>> {
  const out = new Map<FhirType, Set<string>>();
  const walk = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (!value || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (k === 'reference' && typeof v === 'string') {
        const m = /^(?:.*\/)?([A-Z][A-Za-z]+)\/([A-Za-z0-9.-]{1,64})$/.exec(v);
        if (m?.[1] && m[2] && isFhirType(m[1]) && RESOURCES[m[1]].compartment === null) {
          if (!out.has(m[1])) out.set(m[1], new Set());
          out.get(m[1])?.add(m[2]);
        }
      } else if (typeof v === 'object') walk(v);
    }
  };
  walk(resources);
  return out;
}

/** Every page of a search, up to `room` resources. */
async function collect(repo: FhirRepository, type: FhirType, query: Record<string, string[]>, room: number) {
  const out: Resource[] = [];
  let cursor: string | undefined;
  do {
    const q = { ...query, _count: [String(repo.ctx.config.fhirMaxCount)], ...(cursor ? { _cursor: [cursor] } : {}) };
    const { page } = await repo.search(type, q, true);
    out.push(...page.matches);
    if (out.length > room) {
      throw new UnprocessableError(
        `Patient/$everything would return more than ${EVERYTHING_LIMIT} resources; narrow it with _type or _since`,
        undefined,
        'too-costly',
      );
    }
    cursor = page.next ? encodeCursor(page.next) : undefined;
  } while (cursor);
  return out;
}

export async function everything(
  repo: FhirRepository,
  id: string,
  query: Record<string, string[] | string | undefined>,
): Promise<Bundle> {
  const typeParam = first(query, '_type');
  const types = typeParam ? typeParam.split(',').map((t) => t.trim()) : undefined;
  for (const t of types ?? []) {
    if (!isFhirType(t)) throw new BadRequestError(`_type ${JSON.stringify(t)} is not served here`, ['_type']);
  }
  const since = first(query, '_since');
  if (since !== undefined && Number.isNaN(new Date(since).getTime())) {
    throw new BadRequestError('invalid _since', ['_since']);
  }
  const wanted = (t: FhirType) => !types || types.includes(t);
  const patient = await repo.read('Patient', id);
  const matches: Resource[] = [];
  if (wanted('Patient')) matches.push(patient.resource);
  const sinceQ: Record<string, string[]> = since ? { _lastUpdated: [`ge${since}`] } : {};
  for (const type of RESOURCE_TYPES) {
    if (RESOURCES[type].compartment !== 'patient' || !wanted(type)) continue;
    if (!repo.access?.allows('search', type)) continue;
    matches.push(...(await collect(repo, type, { patient: [id], ...sinceQ }, EVERYTHING_LIMIT - matches.length)));
  }
  const included: Resource[] = [];
  for (const [type, ids] of referencedIds(matches)) {
    if (!repo.access?.allows('search', type)) continue;
    const list = [...ids];
    for (let i = 0; i < list.length; i += 100) {
      const part = list.slice(i, i + 100).join(',');
      const found = await collect(repo, type, { _id: [part] }, EVERYTHING_LIMIT - matches.length - included.length);
      const target = wanted(type) ? matches : included;
      target.push(...found);
    }
  }
  const entry = (r: Resource, mode: 'match' | 'include'): BundleEntry => ({
    fullUrl: `${repo.fhirBase}/${r.resourceType}/${r.id}`,
    resource: r,
    search: { mode },
  });
  const params: [string, string][] = [];
  if (types) params.push(['_type', types.join(',')]);
  if (since) params.push(['_since', since]);
  const self = `${repo.fhirBase}/Patient/${id}/$everything${params.length ? `?${new URLSearchParams(params)}` : ''}`;
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    meta: { lastUpdated: new Date().toISOString() },
    total: matches.length,
    link: [{ relation: 'self', url: self }],
    entry: [...matches.map((r) => entry(r, 'match')), ...included.map((r) => entry(r, 'include'))],
  };
}
