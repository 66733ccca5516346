import type { Resource } from '@medplum/fhirtypes';
import { type CommonQueryMethods, type FragmentSqlToken, sql } from 'slonik';
import { type FhirType, isFhirType, RESOURCES } from './registry.ts';
import type { Cursor } from './search/cursor.ts';
import type { SearchPlan } from './search/parse.ts';
import { conditionSql, cursorSql, orderSql, sortColumn } from './search/sql.ts';

/** Access constraint for a resource table aliased `r` (TRUE, or `r.patient_id = ANY(...)`). */
export type ScopeFn = (type: FhirType) => FragmentSqlToken;

export interface SearchPage {
  matches: Resource[];
  included: Resource[];
  next?: Cursor;
  /** Cursor of the page before this one (https://hl7.org/fhir/R4/http.html#paging: `previous`). */
  prev?: Cursor;
  total?: number;
}

/** Most resources an _include/_revinclude adds to one page. */
const INCLUDE_LIMIT = 1000;

/**
 * Runs a search plan: the access scope and any granular restrictions are ANDed into the WHERE clause before
 * ORDER BY/LIMIT, so a restricted caller's pages are never thinned out after the fact. Keyset paging: the page
 * continues strictly after the cursor's (sort value, id).
 */
export async function runSearch(
  conn: CommonQueryMethods,
  plan: SearchPlan,
  scope: ScopeFn,
  restrictions: FragmentSqlToken[],
): Promise<SearchPage> {
  const def = RESOURCES[plan.type];
  const table = sql.identifier([def.table]);
  const where = sql.join(
    [
      sql.fragment`NOT r.deleted`,
      scope(plan.type),
      ...restrictions,
      ...plan.conditions.map((c) => conditionSql(plan.type, c, scope)),
    ],
    sql.fragment` AND `,
  );
  const page: SearchPage = { matches: [], included: [] };
  if (plan.total) {
    const row = (await conn.one(sql.unsafe`SELECT count(*)::int AS n FROM ${table} r WHERE ${where}`)) as { n: number };
    page.total = row.n;
  }
  if (plan.count === 0) return page;
  const sortValue = plan.sort.column === 'id' ? sql.fragment`NULL::text` : sql.fragment`${sortColumn(plan.sort)}::text`;
  // A `previous` cursor walks backwards (the sort order reversed) and the rows are put back in order afterwards.
  const back = plan.cursor?.back === true;
  const sort = back ? { ...plan.sort, descending: !plan.sort.descending } : plan.sort;
  const rows = (await conn.any(sql.unsafe`
    SELECT r.id, r.content, ${sortValue} AS sort_value FROM ${table} r
    WHERE ${where} AND ${cursorSql(sort, plan.cursor)}
    ORDER BY ${orderSql(sort)} LIMIT ${plan.count + 1}`)) as readonly {
    id: string;
    content: Resource;
    sort_value: string | null;
  }[];
  const more = rows.length > plan.count;
  const kept = rows.slice(0, plan.count);
  if (back) kept.reverse();
  page.matches = kept.map((r) => r.content);
  const first = kept[0];
  const last = kept[kept.length - 1];
  if ((back ? plan.cursor !== undefined : more) && last) page.next = { v: last.sort_value, id: last.id };
  if ((back ? more : plan.cursor !== undefined) && first) page.prev = { v: first.sort_value, id: first.id, back: true };
  const ids = kept.map((r) => r.id);
  if (ids.length) page.included = await includes(conn, plan, ids, scope);
  return page;
}

async function fetchByIds(conn: CommonQueryMethods, type: FhirType, ids: string[], scope: ScopeFn) {
  const rows = (await conn.any(sql.unsafe`
    SELECT r.content FROM ${sql.identifier([RESOURCES[type].table])} r
    WHERE r.id = ANY(${sql.array(ids, 'text')}) AND NOT r.deleted AND ${scope(type)}
    LIMIT ${INCLUDE_LIMIT}`)) as readonly { content: Resource }[];
  return rows.map((r) => r.content);
}

/** Rounds of `_include:iterate` followed at most (each round follows the resources the previous one added). */
const ITERATE_ROUNDS = 4;

async function includes(conn: CommonQueryMethods, plan: SearchPlan, ids: string[], scope: ScopeFn) {
  const out: Resource[] = [];
  const seen = new Set(ids.map((id) => `${plan.type}/${id}`));
  const add = (list: Resource[]) => {
    const added: Resource[] = [];
    for (const r of list) {
      const key = `${r.resourceType}/${r.id}`;
      if (!seen.has(key) && out.length < INCLUDE_LIMIT) {
        seen.add(key);
        out.push(r);
        added.push(r);
      }
    }
    return added;
  };
  /** Follows the includes of `specs` from the resources `sources` (type → ids); returns what was added. */
  const follow = async (specs: SearchPlan['include'], sources: Map<FhirType, string[]>) => {
    const added: Resource[] = [];
    for (const inc of specs) {
      const from = sources.get(inc.sourceType);
      if (!from?.length) continue;
      const targets = (await conn.any(sql.unsafe`
        SELECT DISTINCT target_type, target_id FROM search_reference
        WHERE resource_type = ${inc.sourceType} AND code = ${inc.param} AND resource_id = ANY(${sql.array(from, 'text')})`)) as readonly {
        target_type: string;
        target_id: string;
      }[];
      const byType = new Map<FhirType, string[]>();
      for (const t of targets) {
        if (!isFhirType(t.target_type) || (inc.targetType && t.target_type !== inc.targetType)) continue;
        if (seen.has(`${t.target_type}/${t.target_id}`)) continue;
        byType.set(t.target_type, [...(byType.get(t.target_type) ?? []), t.target_id]);
      }
      for (const [type, targetIds] of byType) added.push(...add(await fetchByIds(conn, type, targetIds, scope)));
    }
    return added;
  };
  const group = (list: readonly Resource[]) => {
    const m = new Map<FhirType, string[]>();
    for (const r of list) {
      if (!isFhirType(r.resourceType) || !r.id) continue;
      m.set(r.resourceType, [...(m.get(r.resourceType) ?? []), r.id]);
    }
    return m;
  };
  const matches = new Map<FhirType, string[]>([[plan.type, ids]]);
  let fresh = await follow(
    plan.include.filter((i) => i.sourceType === plan.type),
    matches,
  );
  for (const rev of plan.revInclude) {
    const rows = (await conn.any(sql.unsafe`
      SELECT r.content FROM ${sql.identifier([RESOURCES[rev.sourceType].table])} r
      WHERE NOT r.deleted AND ${scope(rev.sourceType)} AND r.id IN (
        SELECT i.resource_id FROM search_reference i
        WHERE i.resource_type = ${rev.sourceType} AND i.code = ${rev.param} AND i.target_type = ${plan.type}
          AND i.target_id = ANY(${sql.array(ids, 'text')}))
      ORDER BY r.id LIMIT ${INCLUDE_LIMIT}`)) as readonly { content: Resource }[];
    fresh.push(...add(rows.map((r) => r.content)));
  }
  const iterating = plan.include.filter((i) => i.iterate);
  for (let round = 0; round < ITERATE_ROUNDS && iterating.length && fresh.length; round++) {
    fresh = await follow(iterating, group(fresh));
  }
  return out;
}

export interface HistoryEntry {
  resource: Resource;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
}

export interface HistoryQuery {
  type: FhirType;
  id?: string;
  count: number;
  since?: Date;
  cursor?: Cursor;
}

/**
 * Instance or type history, newest first (https://hl7.org/fhir/R4/http.html#history). Type history is filtered
 * by the access scope on each version's compartment owner, before the LIMIT. Keyset cursor: (last_updated, id,
 * version) of the last entry, encoded as v = last_updated text and id = `<version>:<id>`.
 */
export async function runHistory(
  conn: CommonQueryMethods,
  q: HistoryQuery,
  historyScope: FragmentSqlToken,
): Promise<{ entries: HistoryEntry[]; next?: Cursor }> {
  const conds: FragmentSqlToken[] = [sql.fragment`h.resource_type = ${q.type}`, historyScope];
  if (q.id !== undefined) conds.push(sql.fragment`h.id = ${q.id}`);
  if (q.since) conds.push(sql.fragment`h.last_updated >= ${q.since.toISOString()}::timestamptz`);
  if (q.cursor?.v) {
    const sep = q.cursor.id.indexOf(':');
    const version = Number(q.cursor.id.slice(0, sep));
    const id = q.cursor.id.slice(sep + 1);
    conds.push(
      sql.fragment`(h.last_updated, h.id, h.version_id) < (${q.cursor.v}::timestamptz, ${id}, ${Number.isFinite(version) ? version : 0})`,
    );
  }
  const rows = (await conn.any(sql.unsafe`
    SELECT h.id, h.version_id, h.deleted, h.method, h.content, h.last_updated::text AS lu_text,
      to_char(h.last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS lu_iso
    FROM fhir_history h WHERE ${sql.join(conds, sql.fragment` AND `)}
    ORDER BY h.last_updated DESC, h.id DESC, h.version_id DESC LIMIT ${q.count + 1}`)) as readonly {
    id: string;
    version_id: number;
    deleted: boolean;
    method: HistoryEntry['method'];
    content: Resource;
    lu_text: string;
    lu_iso: string;
  }[];
  const kept = rows.slice(0, q.count);
  const last = kept[kept.length - 1];
  const entries = kept.map((r) => ({
    resource: r.content,
    versionId: Number(r.version_id),
    lastUpdated: r.lu_iso,
    deleted: r.deleted,
    method: r.method,
  }));
  return rows.length > q.count && last
    ? { entries, next: { v: last.lu_text, id: `${last.version_id}:${last.id}` } }
    : { entries };
}
