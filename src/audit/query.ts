/**
 * AuditEvent reads and searches in SQL (values always bound through the slonik `sql` tag), limited to what the
 * caller may see (read-access.ts): all events, or those with one of the caller's patients as an entity.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import type { AuditReadScope } from './read-access.ts';
import type { AuditSearch } from './search.ts';

type Db = Pick<CommonQueryMethods, 'any' | 'maybeOne' | 'oneFirst'>;
type Visible = Extract<AuditReadScope, { kind: 'all' } | { kind: 'patients' }>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function visibility(scope: Visible) {
  return scope.kind === 'all'
    ? sql.fragment`TRUE`
    : sql.fragment`patient_ids && ${sql.array(scope.patientIds, 'text')}`;
}

/** One event by id, when it exists and the caller may see it (otherwise undefined: a 404 either way). */
export async function readAuditEvent(db: Db, id: string, scope: Visible): Promise<AuditEvent | undefined> {
  if (!UUID.test(id)) return undefined;
  const row = (await db.maybeOne(
    sql.unsafe`SELECT content FROM audit_event WHERE id = ${sql.uuid(id)} AND ${visibility(scope)}`,
  )) as { content: AuditEvent } | null;
  return row?.content;
}

export interface SearchPage {
  readonly events: AuditEvent[];
  readonly total: number;
}

/** A page of matching events, newest first by default (`_sort=-date`), and the total number of matches. */
export async function searchAuditEvents(db: Db, search: AuditSearch, scope: Visible): Promise<SearchPage> {
  const where = [visibility(scope)];
  for (const d of search.dates) {
    where.push(
      d.op === 'ge'
        ? sql.fragment`recorded >= ${sql.timestamp(d.at)}`
        : sql.fragment`recorded < ${sql.timestamp(d.at)}`,
    );
  }
  for (const a of search.arrays) {
    where.push(sql.fragment`${sql.identifier([a.column])} && ${sql.array(a.values, 'text')}`);
  }
  for (const s of search.scalars) {
    where.push(sql.fragment`${sql.identifier([s.column])} = ANY(${sql.array(s.values, 'text')})`);
  }
  const cond = sql.join(where, sql.fragment` AND `);
  const order = search.sort === 'asc' ? sql.fragment`recorded ASC, seq ASC` : sql.fragment`recorded DESC, seq DESC`;
  const total = Number(await db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event WHERE ${cond}`));
  if (search.count === 0) return { events: [], total };
  const rows = (await db.any(sql.unsafe`
    SELECT content FROM audit_event WHERE ${cond} ORDER BY ${order} LIMIT ${search.count} OFFSET ${search.offset}`)) as readonly {
    content: AuditEvent;
  }[];
  return { events: rows.map((r) => r.content), total };
}
