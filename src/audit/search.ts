/**
 * Parsing of AuditEvent search parameters (FHIR R4 search, https://hl7.org/fhir/R4/search.html; the AuditEvent
 * parameters https://hl7.org/fhir/R4/auditevent.html#search). Pure: the result is data that query.ts turns into SQL
 * with bound values only.
 *
 * Supported: date (eq/ne-free prefixes eq, lt, le, gt, ge, sa, eb; partial dates as ranges), agent, entity, patient,
 * type, subtype, action, outcome, source, request-id (extension: the X-Request-Id), _sort (date | -date), _count,
 * _offset. Comma-separated values are ORed; repeated parameters are ANDed. Anything else is a 400. An `entity` UID
 * matches in both its forms (`1.2.3` and `urn:oid:1.2.3`).
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

export class AuditSearchError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_SEARCH';
  override name = 'AuditSearchError';
}

/** A half-open instant range [from, to). */
export interface DateBound {
  readonly op: 'ge' | 'lt';
  readonly at: Date;
}

export type TokenColumn = 'agent_who' | 'entity_refs' | 'patient_ids' | 'type_tokens' | 'subtype_tokens';
export type ScalarColumn = 'action' | 'outcome' | 'source' | 'request_id';

export interface AuditSearch {
  readonly dates: readonly DateBound[];
  /** Each entry: the row's array column must overlap these values (OR); entries are ANDed. */
  readonly arrays: readonly { readonly column: TokenColumn; readonly values: readonly string[] }[];
  /** Each entry: the column equals one of these values. */
  readonly scalars: readonly { readonly column: ScalarColumn; readonly values: readonly string[] }[];
  readonly sort: 'asc' | 'desc';
  readonly count: number;
  readonly offset: number;
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 100;

const ARRAY_PARAMS: Record<string, TokenColumn> = {
  agent: 'agent_who',
  entity: 'entity_refs',
  patient: 'patient_ids',
  type: 'type_tokens',
  subtype: 'subtype_tokens',
};
const SCALAR_PARAMS: Record<string, ScalarColumn> = {
  action: 'action',
  outcome: 'outcome',
  source: 'source',
  'request-id': 'request_id',
};

/** Whether this search implements the named parameter (every one the CapabilityStatement lists must be). */
export function implementsParam(name: string): boolean {
  return name === 'date' || name in ARRAY_PARAMS || name in SCALAR_PARAMS;
}

const DATE =
  /^(eq|lt|le|gt|ge|sa|eb)?(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The instant range [start, end) a FHIR date value denotes at its precision (local times are taken as UTC). */
export function dateRange(value: string): { start: Date; end: Date } {
  const m = DATE.exec(value);
  if (!m) throw new AuditSearchError(`invalid date: ${value}`);
  const [, , y, mo, d, hh, mi, ss, frac, tz] = m;
  const year = Number(y);
  if (mo === undefined) return { start: new Date(Date.UTC(year, 0, 1)), end: new Date(Date.UTC(year + 1, 0, 1)) };
  const month = Number(mo) - 1;
  if (month > 11) throw new AuditSearchError(`invalid date: ${value}`);
  if (d === undefined)
    return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
  const day = Number(d);
  if (hh === undefined) {
    const start = new Date(Date.UTC(year, month, day));
    if (start.getUTCDate() !== day) throw new AuditSearchError(`invalid date: ${value}`);
    return { start, end: new Date(Date.UTC(year, month, day + 1)) };
  }
  const iso = `${y}-${mo}-${d}T${hh}:${mi}:${ss ?? '00'}${frac ?? ''}${tz ?? 'Z'}`;
  const start = new Date(iso);
  if (Number.isNaN(start.getTime())) throw new AuditSearchError(`invalid date: ${value}`);
  const step = ss === undefined ? 60_000 : frac === undefined ? 1000 : 1;
  return { start, end: new Date(start.getTime() + step) };
}

/** The bounds of one `date` parameter value. */
export function dateBounds(value: string): DateBound[] {
  const prefix = /^(eq|lt|le|gt|ge|sa|eb)/.exec(value)?.[1] ?? 'eq';
  const { start, end } = dateRange(value);
  switch (prefix) {
    case 'lt':
    case 'eb':
      return [{ op: 'lt', at: start }];
    case 'le':
      return [{ op: 'lt', at: end }];
    case 'gt':
    case 'sa':
      return [{ op: 'ge', at: end }];
    case 'ge':
      return [{ op: 'ge', at: start }];
    default:
      return [
        { op: 'ge', at: start },
        { op: 'lt', at: end },
      ];
  }
}

/** A DICOM UID (PS3.5 §9.1), bare or as `urn:oid:` (RFC 3001). */
const UID = /^(?:urn:oid:)?[0-9]+(?:\.[0-9]+)+$/;

/** Both forms of a UID (`1.2.3` and `urn:oid:1.2.3`), so that either finds an entity recorded in either; else as is. */
export function uidForms(value: string): string[] {
  if (!UID.test(value)) return [value];
  const bare = value.replace(/^urn:oid:/, '');
  return [bare, `urn:oid:${bare}`];
}

/** Strips a token's optional `system|` when the system is empty (`|code`); reference values stay as given. */
function values(raw: string, param: string): string[] {
  const out = raw
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '')
    .map((v) => (v.startsWith('|') ? v.slice(1) : v));
  if (!out.length) throw new AuditSearchError(`empty value for ${param}`);
  if (param === 'patient') return out.map((v) => v.replace(/^(?:.*\/)?Patient\//, ''));
  if (param === 'entity') return [...new Set(out.flatMap(uidForms))];
  return out;
}

function int(raw: string, param: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(raw)) throw new AuditSearchError(`${param} must be a whole number`);
  const n = Number(raw);
  if (n < min || n > max) throw new AuditSearchError(`${param} must be between ${min} and ${max}`);
  return n;
}

/** Parses a query (as pairs, repeated keys allowed) into an {@link AuditSearch}. */
export function parseAuditSearch(pairs: Iterable<[string, string]>): AuditSearch {
  const dates: DateBound[] = [];
  const arrays: { column: TokenColumn; values: string[] }[] = [];
  const scalars: { column: ScalarColumn; values: string[] }[] = [];
  let sort: 'asc' | 'desc' = 'desc';
  let count = DEFAULT_COUNT;
  let offset = 0;
  for (const [key, raw] of pairs) {
    const [name, modifier] = key.split(':');
    if (modifier !== undefined) {
      throw new AuditSearchError(`modifier :${modifier} is not supported on ${name}`);
    }
    if (name === 'date') dates.push(...dateBounds(raw));
    else if (name && name in ARRAY_PARAMS)
      arrays.push({ column: ARRAY_PARAMS[name] as TokenColumn, values: values(raw, name) });
    else if (name && name in SCALAR_PARAMS) {
      scalars.push({ column: SCALAR_PARAMS[name] as ScalarColumn, values: values(raw, name) });
    } else if (name === '_sort') {
      if (raw !== 'date' && raw !== '-date') throw new AuditSearchError('_sort supports date and -date');
      sort = raw === 'date' ? 'asc' : 'desc';
    } else if (name === '_count') count = int(raw, '_count', 0, MAX_COUNT);
    else if (name === '_offset') offset = int(raw, '_offset', 0, 100_000_000);
    else if (name === '_format') {
      if (!/json/.test(raw)) throw new AuditSearchError('only JSON is served');
    } else throw new AuditSearchError(`unknown search parameter: ${key}`);
  }
  return { dates, arrays, scalars, sort, count, offset };
}
