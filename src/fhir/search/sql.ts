import { type FragmentSqlToken, sql } from 'slonik';
import { type FhirType, RESOURCES } from '../registry.ts';
import type { Condition, SortSpec } from './parse.ts';
import type { Cursor } from './cursor.ts';
import type { DatePrefix } from './dates.ts';
import { escapeLike, hasNul, normalizeString } from './normalize.ts';

/**
 * Search conditions → parameterized SQL fragments over a resource table aliased `r`. Every user value is a bound
 * parameter; identifiers come only from the registry. Index tables: search_token, search_string, search_date,
 * search_reference (see migrations/002.do.fhir.sql).
 */

const FALSE = sql.fragment`FALSE`;
const TRUE = sql.fragment`TRUE`;

function or(parts: FragmentSqlToken[]): FragmentSqlToken {
  if (parts.length === 0) return FALSE;
  if (parts.length === 1) return parts[0] as FragmentSqlToken;
  return sql.fragment`(${sql.join(parts, sql.fragment` OR `)})`;
}

/** Date prefix semantics over a target range (low, high) and a search range; mirrors `matchesDate`. */
export function dateCondition(
  prefix: DatePrefix,
  low: FragmentSqlToken,
  high: FragmentSqlToken,
  s: { low: Date; high: Date },
): FragmentSqlToken {
  const sl = s.low.toISOString();
  const sh = s.high.toISOString();
  switch (prefix) {
    case 'eq':
      return sql.fragment`(${low} >= ${sl}::timestamptz AND ${high} <= ${sh}::timestamptz)`;
    case 'ne':
      return sql.fragment`NOT (${low} >= ${sl}::timestamptz AND ${high} <= ${sh}::timestamptz)`;
    case 'gt':
      return sql.fragment`${high} > ${sh}::timestamptz`;
    case 'lt':
      return sql.fragment`${low} < ${sl}::timestamptz`;
    case 'ge':
      return sql.fragment`${high} >= ${sl}::timestamptz`;
    case 'le':
      return sql.fragment`${low} <= ${sh}::timestamptz`;
    case 'sa':
      return sql.fragment`${low} > ${sh}::timestamptz`;
    case 'eb':
      return sql.fragment`${high} < ${sl}::timestamptz`;
    case 'ap':
      return sql.fragment`(${low} <= ${sh}::timestamptz AND ${high} >= ${sl}::timestamptz)`;
  }
}

const INDEX_TABLE = {
  token: sql.identifier(['search_token']),
  string: sql.identifier(['search_string']),
  date: sql.identifier(['search_date']),
  reference: sql.identifier(['search_reference']),
} as const;

/** `r.id IN (SELECT resource_id FROM <index> WHERE resource_type = .. AND code = .. AND <cond>)`. */
function inIndex(table: keyof typeof INDEX_TABLE, type: string, code: string, cond: FragmentSqlToken, not = false) {
  const sub = sql.fragment`SELECT i.resource_id FROM ${INDEX_TABLE[table]} i WHERE i.resource_type = ${type} AND i.code = ${code} AND ${cond}`;
  return not ? sql.fragment`r.id NOT IN (${sub})` : sql.fragment`r.id IN (${sub})`;
}

/**
 * One condition as SQL. `alias` is the table alias of the resource (always `r` at the top level; chained
 * conditions use a sub-select over the target table whose rows are also aliased `r`). `scope` gives the access
 * constraint for chained target tables.
 */
export function conditionSql(
  type: string,
  c: Condition,
  scope: (type: FhirType) => FragmentSqlToken,
): FragmentSqlToken {
  switch (c.kind) {
    case 'id': {
      const ids = c.values.filter((v) => !hasNul(v));
      return ids.length ? sql.fragment`r.id = ANY(${sql.array(ids, 'text')})` : FALSE;
    }
    case 'lastUpdated':
      return dateCondition(c.prefix, sql.fragment`r.last_updated`, sql.fragment`r.last_updated`, c.range);
    case 'token': {
      const parts = c.values
        .filter((v) => !(v.code && hasNul(v.code)) && !(v.system && hasNul(v.system)))
        .map((v) => {
          const conds: FragmentSqlToken[] = [];
          if (v.code !== undefined) conds.push(sql.fragment`i.value = ${v.code}`);
          if (v.system === null) conds.push(sql.fragment`i.system IS NULL`);
          else if (v.system !== undefined) conds.push(sql.fragment`i.system = ${v.system}`);
          return conds.length ? sql.fragment`(${sql.join(conds, sql.fragment` AND `)})` : TRUE;
        });
      return inIndex('token', type, c.code, or(parts), c.not);
    }
    case 'string': {
      const parts = c.values
        .filter((v) => !hasNul(v))
        .map((v) => {
          const norm = normalizeString(v);
          if (c.match === 'exact') return sql.fragment`(i.value = ${norm} AND i.exact = ${v})`;
          if (c.match === 'contains') return sql.fragment`i.value LIKE ${`%${escapeLike(norm)}%`}`;
          return sql.fragment`i.value LIKE ${`${escapeLike(norm)}%`}`;
        });
      return parts.length ? inIndex('string', type, c.code, or(parts)) : FALSE;
    }
    case 'date':
      return inIndex('date', type, c.code, dateCondition(c.prefix, sql.fragment`i.low`, sql.fragment`i.high`, c.range));
    case 'reference': {
      const parts = c.values
        .filter((v) => !hasNul(v.id) && !(v.type && hasNul(v.type)))
        .map((v) =>
          v.type
            ? sql.fragment`(i.target_id = ${v.id} AND i.target_type = ${v.type})`
            : sql.fragment`i.target_id = ${v.id}`,
        );
      return inIndex('reference', type, c.code, or(parts));
    }
    case 'missing': {
      const sub = sql.fragment`SELECT 1 FROM ${INDEX_TABLE[c.paramType]} i WHERE i.resource_type = ${type} AND i.code = ${c.code} AND i.resource_id = r.id`;
      return c.missing ? sql.fragment`NOT EXISTS (${sub})` : sql.fragment`EXISTS (${sub})`;
    }
    case 'chain': {
      const target = RESOURCES[c.targetType];
      const inner = sql.fragment`SELECT r.id FROM ${sql.identifier([target.table])} r WHERE NOT r.deleted AND ${scope(c.targetType)} AND ${conditionSql(c.targetType, c.child, scope)}`;
      return inIndex(
        'reference',
        type,
        c.code,
        sql.fragment`i.target_type = ${c.targetType} AND i.target_id IN (${inner})`,
      );
    }
  }
}

/** The sort expression of a plan. */
export function sortColumn(sort: SortSpec): FragmentSqlToken {
  return sort.column === 'id' ? sql.fragment`r.id` : sql.fragment`r.${sql.identifier([sort.column])}`;
}

/** Keyset condition: strictly after the cursor in the sort order (ties broken by id). */
export function cursorSql(sort: SortSpec, cursor: Cursor | undefined): FragmentSqlToken {
  if (!cursor) return TRUE;
  const cmp = sort.descending ? sql.fragment`<` : sql.fragment`>`;
  if (sort.column === 'id' || cursor.v === null) return sql.fragment`r.id ${cmp} ${cursor.id}`;
  const cast = sort.column === 'sort_string' ? sql.fragment`text` : sql.fragment`timestamptz`;
  return sql.fragment`(${sortColumn(sort)}, r.id) ${cmp} (${cursor.v}::${cast}, ${cursor.id})`;
}

export function orderSql(sort: SortSpec): FragmentSqlToken {
  const dir = sort.descending ? sql.fragment`DESC` : sql.fragment`ASC`;
  if (sort.column === 'id') return sql.fragment`r.id ${dir}`;
  return sql.fragment`${sortColumn(sort)} ${dir}, r.id ${dir}`;
}
