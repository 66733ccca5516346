/**
 * AuditEvent reads and searches in SQL (values always bound through the slonik `sql` tag), limited to what the
 * caller may see (read-access.ts): all events for auditors; for a patient-context caller, the events of its own
 * compartment (its patient among the patients whose data was accessed), matched only on what it will see of them and
 * returned redacted (redact.ts), so that neither the events nor the totals reveal other patients.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { type CommonQueryMethods, type FragmentSqlToken, sql } from 'slonik';
import { type AuditItem, renderItem } from './compact.ts';
import type { AuditReadScope } from './read-access.ts';
import { entitySurvives, type OwnIdentifiers, redactForPatient } from './redact.ts';
import type { AuditSearch } from './search.ts';

type Db = Pick<CommonQueryMethods, 'any' | 'anyFirst' | 'maybeOne' | 'oneFirst'>;
type Visible = Extract<AuditReadScope, { kind: 'all' } | { kind: 'patients' }>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The identifiers of these patients that a redacted event may keep (their MRNs, studies, orders, accessions). */
export async function ownIdentifiers(db: Db, patientIds: readonly string[]): Promise<OwnIdentifiers> {
  const ids = sql.array(patientIds, 'text');
  const mrns = await db.anyFirst(sql.unsafe`SELECT mrn FROM patients WHERE id = ANY(${ids}) AND mrn IS NOT NULL`);
  const studyUids = await db.anyFirst(sql.unsafe`
    SELECT study_instance_uid FROM imaging_studies WHERE patient_id = ANY(${ids}) AND study_instance_uid IS NOT NULL`);
  const orders = (await db.any(
    sql.unsafe`SELECT id, accession_number FROM orders WHERE patient_id = ANY(${ids})`,
  )) as readonly { id: string; accession_number: string | null }[];
  return {
    patientIds,
    mrns: mrns.map(String),
    studyUids: studyUids.map(String),
    accessions: orders.flatMap((o) => (o.accession_number ? [o.accession_number] : [])),
    orderIds: orders.map((o) => o.id),
  };
}

function visibility(scope: Visible) {
  return scope.kind === 'all'
    ? sql.fragment`TRUE`
    : sql.fragment`patient_ids && ${sql.array(scope.patientIds, 'text')}`;
}

/** The identifiers a patient-context caller may see (undefined for auditors, who see everything). */
async function ownOf(db: Db, scope: Visible): Promise<OwnIdentifiers | undefined> {
  return scope.kind === 'patients' ? ownIdentifiers(db, scope.patientIds) : undefined;
}

/** One event by id, when it exists and the caller may see it (otherwise undefined: a 404 either way). */
export async function readAuditEvent(db: Db, id: string, scope: Visible): Promise<AuditEvent | undefined> {
  if (!UUID.test(id)) return undefined;
  const row = (await db.maybeOne(
    sql.unsafe`SELECT content FROM audit_event WHERE id = ${sql.uuid(id)} AND ${visibility(scope)}`,
  )) as { content: AuditItem } | null;
  if (!row) return undefined;
  const event = renderItem(row.content);
  const own = await ownOf(db, scope);
  return own ? redactForPatient(event, own) : event;
}

export interface SearchPage {
  readonly events: AuditEvent[];
  readonly total: number;
}

const OR = sql.fragment` OR `;
const FALSE = sql.fragment`FALSE`;
const anyOf = (parts: FragmentSqlToken[]) => (parts.length ? sql.fragment`(${sql.join(parts, OR)})` : FALSE);

/** A value as a literal inside a PostgreSQL regular expression (ARE): every non-alphanumeric escaped. */
const reLiteral = (v: string) => v.replace(/[^A-Za-z0-9]/g, (c) => `\\${c}`);

/**
 * An auditor's `patient=` condition: the patients whose data was accessed (patient_ids), the patients a request named
 * without being shown them (requested_patient_ids), and, computed now, events naming their `Patient/{id}` or one of
 * their studies as an entity. For events stored before the facade recorded requested patients, also their
 * raw queries naming the patient's id, MRN or a study (`ServiceRequest?patient=B`, `PatientID=MRN-B`).
 */
async function auditorPatientCondition(db: Db, values: readonly string[]): Promise<FragmentSqlToken> {
  const ids = await ownIdentifiers(db, values);
  const overlap = (col: string, vs: readonly string[]) =>
    sql.fragment`${sql.identifier([col])} && ${sql.array(vs, 'text')}`;
  const tokens = [...values, ...ids.mrns, ...ids.studyUids].map(reLiteral);
  const pattern = `(^|[=,/]|%2[CcFf])(${tokens.join('|')})($|[&,/\n]|%2[Cc])`;
  return anyOf([
    overlap('patient_ids', values),
    overlap('requested_patient_ids', values),
    overlap('entity_refs', [...values.map((v) => `Patient/${v}`), ...ids.studyUids]),
    sql.fragment`(seq <= (SELECT legacy_through_seq FROM audit_requested_from)
      AND (outcome <> '0' OR patient_ids = '{}') AND audit_query_text(content) ~ ${pattern})`,
  ]);
}

/**
 * An array-column condition for a patient-context caller: only values that survive redaction can match (redact.ts
 * `entitySurvives`); another patient's id or study matches nothing, exactly like an id that never existed.
 */
function patientArrayCondition(column: AuditSearch['arrays'][number], own: OwnIdentifiers): FragmentSqlToken {
  const values = column.values;
  const overlap = (col: string, vs: readonly string[]) =>
    sql.fragment`${sql.identifier([col])} && ${sql.array(vs, 'text')}`;
  const mine = sql.array(own.patientIds, 'text');
  if (column.column === 'patient_ids') {
    const kept = values.filter((v) => own.patientIds.includes(v));
    return kept.length ? overlap('patient_ids', kept) : FALSE;
  }
  if (column.column !== 'entity_refs') return overlap(column.column, values);
  return anyOf(
    values.flatMap((v): FragmentSqlToken[] => {
      const survives = entitySurvives(v, own);
      if (survives === 'never') return [];
      if (survives === 'always') return [overlap('entity_refs', [v])];
      return [sql.fragment`(${overlap('entity_refs', [v])} AND patient_ids <@ ${mine})`];
    }),
  );
}

/** The condition of one array parameter, for this caller. */
async function arrayCondition(
  db: Db,
  column: AuditSearch['arrays'][number],
  own: OwnIdentifiers | undefined,
): Promise<FragmentSqlToken> {
  if (own) return patientArrayCondition(column, own);
  if (column.column === 'patient_ids') return auditorPatientCondition(db, column.values);
  return sql.fragment`${sql.identifier([column.column])} && ${sql.array(column.values, 'text')}`;
}

/** A page of matching events, newest first by default (`_sort=-date`), and the total number of matches. */
export async function searchAuditEvents(db: Db, search: AuditSearch, scope: Visible): Promise<SearchPage> {
  const own = await ownOf(db, scope);
  const where = [visibility(scope)];
  for (const d of search.dates) {
    where.push(
      d.op === 'ge'
        ? sql.fragment`recorded >= ${sql.timestamp(d.at)}`
        : sql.fragment`recorded < ${sql.timestamp(d.at)}`,
    );
  }
  for (const a of search.arrays) where.push(await arrayCondition(db, a, own));
  for (const s of search.scalars) {
    where.push(sql.fragment`${sql.identifier([s.column])} = ANY(${sql.array(s.values, 'text')})`);
  }
  const cond = sql.join(where, sql.fragment` AND `);
  const order = search.sort === 'asc' ? sql.fragment`recorded ASC, seq ASC` : sql.fragment`recorded DESC, seq DESC`;
  const total = Number(await db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event WHERE ${cond}`));
  if (search.count === 0) return { events: [], total };
  const rows = (await db.any(sql.unsafe`
    SELECT content FROM audit_event WHERE ${cond} ORDER BY ${order} LIMIT ${search.count} OFFSET ${search.offset}`)) as readonly {
    content: AuditItem;
  }[];
  const events = rows.map((r) => renderItem(r.content));
  return { events: own ? events.map((e) => redactForPatient(e, own)) : events, total };
}
