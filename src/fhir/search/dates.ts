import { BadRequestError } from '../errors.ts';

/** A date or dateTime as the instant range it covers, both ends inclusive (millisecond resolution). */
export interface DateRange {
  low: Date;
  high: Date;
}

const DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * The range covered by a FHIR date/dateTime/instant at its precision (https://hl7.org/fhir/R4/search.html#date):
 * `2020` is the whole year, `2020-02` the whole month, `2020-02-03T10:00` that minute. A missing zone is UTC.
 * Returns undefined for anything that is not a valid calendar value.
 */
export function dateRange(value: string): DateRange | undefined {
  const m = DATE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  const hour = h ? Number(h) : 0;
  const minute = mi ? Number(mi) : 0;
  const second = s ? Number(s) : 0;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  let offsetMs = 0;
  if (tz && tz !== 'Z') {
    const sign = tz.startsWith('-') ? -1 : 1;
    const [th, tm] = tz.slice(1).split(':').map(Number);
    if ((th ?? 0) > 14 || (tm ?? 0) > 59) return undefined;
    offsetMs = sign * ((th ?? 0) * 60 + (tm ?? 0)) * 60_000;
  }
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  const low = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMs;
  let next: number;
  if (!mo) next = Date.UTC(year + 1, 0, 1);
  else if (!d) next = Date.UTC(year, month, 1);
  else if (!h) next = Date.UTC(year, month - 1, day + 1);
  else if (!s) next = low + 60_000;
  else if (!frac) next = low + 1000;
  else next = low + 1;
  return { low: new Date(low), high: new Date(next - 1) };
}

/** Like {@link dateRange} but throws a 400 naming the parameter. */
export function searchDateRange(code: string, value: string): DateRange {
  const r = dateRange(value);
  if (!r) throw new BadRequestError(`invalid date in search parameter ${code}: ${JSON.stringify(value)}`, [code]);
  return r;
}

/** Date search prefixes (https://hl7.org/fhir/R4/search.html#prefix). */
export const DATE_PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'] as const;
export type DatePrefix = (typeof DATE_PREFIXES)[number];

/**
 * Whether a target range [low, high] matches the search range for a prefix, as a pure predicate. The SQL in
 * `search/sql.ts` implements the same table; unit tests check both against each other.
 */
export function matchesDate(prefix: DatePrefix, target: DateRange, search: DateRange): boolean {
  const [tl, th, sl, sh] = [target.low.getTime(), target.high.getTime(), search.low.getTime(), search.high.getTime()];
  switch (prefix) {
    case 'eq':
      return tl >= sl && th <= sh;
    case 'ne':
      return !(tl >= sl && th <= sh);
    case 'gt':
      return th > sh;
    case 'lt':
      return tl < sl;
    case 'ge':
      return th >= sl;
    case 'le':
      return tl <= sh;
    case 'sa':
      return tl > sh;
    case 'eb':
      return th < sl;
    case 'ap':
      return tl <= sh && th >= sl;
  }
}
