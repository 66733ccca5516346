/**
 * QIDO-RS query parsing, validation and translation for Orthanc (DICOM PS3.18 §8.3.4 and §10.6.1).
 * Pure: no I/O. Every rejection is a {@link BadDicomWebRequestError} whose message says what is wrong.
 *
 * What the facade adds on top of Orthanc's DICOMweb plugin 1.7:
 * - `includefield=a,b` and `includefield=all` (Orthanc only honours the repeated form): expanded to repeated tags;
 * - unknown parameters and malformed values are rejected with 400 (Orthanc ignores or answers an empty 400);
 * - non-ASCII characters in match values become wildcards (Orthanc's index keeps only the ASCII letters).
 */
import dcmjs from 'dcmjs';
import { BadDicomWebRequestError } from './errors.ts';
import { INCLUDE_ALL } from './qido/include-all.ts';

export type QidoLevel = 'study' | 'series' | 'instance';

export interface QidoQuery {
  /** Attribute constraints as `[tag, value]`, tags as 8 upper-case hex digits, excluding StudyInstanceUID. */
  readonly match: ReadonlyArray<readonly [string, string]>;
  /** StudyInstanceUID (0020,000D) list matching, when given. */
  readonly studyUids?: readonly string[];
  /** Tags to include (deduplicated), `all` already expanded. */
  readonly includeFields: readonly string[];
  readonly limit?: number;
  readonly offset: number;
  readonly fuzzy: boolean;
}

interface DictEntry {
  tag: string;
  vr: string;
  name: string;
}
const dictionary = dcmjs.data.DicomMetaDictionary as unknown as {
  dictionary: Record<string, DictEntry>;
  nameMap: Record<string, DictEntry>;
};

export const STUDY_UID_TAG = '0020000D';
const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
const HEX_TAG = /^[0-9A-Fa-f]{8}$/;
const MAX_VALUE = 1024;
const MAX_UIDS = 1000;

/** The VR given to a hex tag outside the dictionary (private tags, newer attributes): matched as a string. */
export const UNKNOWN_VR = 'UN';

/**
 * Resolves a keyword (`PatientName`) or hex tag (`00100010`) to `{tag, vr}`; undefined for an unknown keyword. Any
 * well-formed 8-hex-digit tag resolves, also outside the dictionary (private tags such as `00091001`, with
 * {@link UNKNOWN_VR}): PS3.18 §8.3.4.1 allows attribute tags as keys, and Orthanc answers them from the stored files.
 */
export function resolveAttribute(key: string): { tag: string; vr: string } | undefined {
  if (HEX_TAG.test(key)) {
    const tag = key.toUpperCase();
    const entry = dictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`];
    return { tag, vr: entry?.vr ?? UNKNOWN_VR };
  }
  const entry = Object.hasOwn(dictionary.nameMap, key) ? dictionary.nameMap[key] : undefined;
  if (!entry || !/^\([0-9A-F]{4},[0-9A-F]{4}\)$/.test(entry.tag)) return undefined;
  return { tag: entry.tag.slice(1, 5) + entry.tag.slice(6, 10), vr: entry.vr };
}

/** Splits a UID list (PS3.18 §8.3.4.1: comma-separated; backslash as in PS3.4 also accepted) and validates it. */
export function parseUidList(value: string, what = 'StudyInstanceUID'): string[] {
  const uids = value.split(/[,\\]/).map((u) => u.trim());
  if (uids.length > MAX_UIDS) throw new BadDicomWebRequestError(`${what}: at most ${MAX_UIDS} UIDs in one list`);
  for (const u of uids) {
    if (u.includes('*') || u.includes('?')) {
      throw new BadDicomWebRequestError(`${what}: UIDs do not support wildcard matching`);
    }
    if (!isUid(u)) throw new BadDicomWebRequestError(`${what}: "${u.slice(0, 80)}" is not a valid UID`);
  }
  return [...new Set(uids)];
}

/** Control characters (C0, DEL) or a backslash (DICOM's multi-value separator, which would turn into list matching). */
export function hasControlOrBackslash(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c) return true;
  }
  return false;
}

export function isUid(u: string): boolean {
  return u.length > 0 && u.length <= 64 && UID.test(u);
}

const DATE = String.raw`\d{8}`;
const TIME = String.raw`\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?`;
const DATETIME = String.raw`\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?`;
const rangeOf = (one: string) => new RegExp(`^(${one})?(-(${one})?)?$`);
const RANGES: Record<string, RegExp> = { DA: rangeOf(DATE), TM: rangeOf(TIME), DT: rangeOf(DATETIME) };
const NUMBER = /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/;
const WILDCARD_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
const NUMERIC_VRS = new Set(['IS', 'DS', 'US', 'UL', 'SS', 'SL', 'FL', 'FD', 'UV', 'SV']);

function validDate(d: string): boolean {
  const y = Number(d.slice(0, 4));
  const m = Number(d.slice(4, 6));
  const day = Number(d.slice(6, 8));
  const dt = new Date(Date.UTC(y, m - 1, day));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === day;
}

/**
 * Makes a non-ASCII match value usable with Orthanc 1.10, which indexes names and identifiers converted to ASCII (the
 * non-ASCII letters do not survive) and does not decode percent-encoded query values: every run of non-ASCII
 * characters becomes the wildcard `*` (`Müller*` → `M*ller*`). Matching is thereby a superset: `M*ller*` also
 * matches `Mahler`. Stated in the conformance statement (docs/dicomweb.md).
 */
export function nonAsciiAsWildcard(value: string): string {
  return value.replace(/[\u0080-\uffff]+/g, '*').replace(/\*{2,}/g, '*');
}

/** Validates one attribute value for its VR and returns the value to send to Orthanc. */
export function normalizeValue(keyword: string, vr: string, value: string): string {
  if (value.length > MAX_VALUE) throw new BadDicomWebRequestError(`${keyword}: value longer than ${MAX_VALUE}`);
  if (hasControlOrBackslash(value)) {
    throw new BadDicomWebRequestError(`${keyword}: control characters and backslashes are not allowed`);
  }
  if (value === '' || value === '*') return value;
  if (vr === 'UI') return parseUidList(value, keyword).join(',');
  const range = RANGES[vr];
  if (range) {
    if (!range.test(value) || value === '-') {
      throw new BadDicomWebRequestError(`${keyword}: "${value}" is not a valid ${vr} value or range`);
    }
    if (vr === 'DA') {
      const [from = '', to = ''] = value.split('-');
      if ((from && !validDate(from)) || (to && !validDate(to))) {
        throw new BadDicomWebRequestError(`${keyword}: "${value}" is not a valid date`);
      }
      if (from && to && from > to) throw new BadDicomWebRequestError(`${keyword}: range start is after its end`);
    }
    return value;
  }
  if (NUMERIC_VRS.has(vr)) {
    if (!NUMBER.test(value)) throw new BadDicomWebRequestError(`${keyword}: "${value}" is not a number`);
    return value;
  }
  if (!WILDCARD_VRS.has(vr) && vr !== UNKNOWN_VR) {
    throw new BadDicomWebRequestError(`${keyword}: matching on VR ${vr} attributes is not supported`);
  }
  return nonAsciiAsWildcard(value);
}

function integer(name: string, value: string, min: number): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < min) {
    throw new BadDicomWebRequestError(`${name} must be an integer >= ${min} (got "${value.slice(0, 40)}")`);
  }
  return Number(value);
}

/** Parses a QIDO-RS query string (without the leading `?`) for a search at `level`. */
export function parseQidoQuery(queryString: string, level: QidoLevel): QidoQuery {
  const params = new URLSearchParams(queryString);
  const match: Array<readonly [string, string]> = [];
  const include = new Set<string>();
  const seen = new Set<string>();
  let studyUids: string[] | undefined;
  let limit: number | undefined;
  let offset = 0;
  let fuzzy = false;
  const once = (key: string) => {
    if (seen.has(key)) throw new BadDicomWebRequestError(`${key} is given more than once`);
    seen.add(key);
  };
  for (const [key, value] of params) {
    if (key === 'limit') {
      once(key);
      limit = integer('limit', value, 1);
    } else if (key === 'offset') {
      once(key);
      offset = integer('offset', value, 0);
    } else if (key === 'fuzzymatching') {
      once(key);
      if (value !== 'true' && value !== 'false')
        throw new BadDicomWebRequestError('fuzzymatching must be true or false');
      fuzzy = value === 'true';
    } else if (key === 'includefield') {
      for (const field of value.split(',')) addIncludeField(include, field.trim(), level);
    } else if (key === 'access_token') {
      throw new BadDicomWebRequestError('Tokens in the query string are not accepted: use the Authorization header');
    } else {
      if (key.includes('.')) throw new BadDicomWebRequestError(`${key}: nested (sequence) matching is not supported`);
      const attr = resolveAttribute(key);
      if (!attr) throw new BadDicomWebRequestError(`Unsupported query parameter "${key.slice(0, 80)}"`);
      once(attr.tag);
      if (attr.tag === STUDY_UID_TAG && value !== '' && value !== '*') studyUids = parseUidList(value);
      else match.push([attr.tag, normalizeValue(key, attr.vr, value)]);
    }
  }
  return {
    match,
    includeFields: [...include],
    offset,
    fuzzy,
    ...(limit === undefined ? {} : { limit }),
    ...(studyUids ? { studyUids } : {}),
  };
}

function addIncludeField(into: Set<string>, field: string, level: QidoLevel): void {
  if (field === 'all') {
    for (const tag of INCLUDE_ALL[level]) into.add(tag);
    return;
  }
  const attr = resolveAttribute(field);
  if (!attr) throw new BadDicomWebRequestError(`includefield: unknown attribute "${field.slice(0, 80)}"`);
  into.add(attr.tag);
}

export interface OrthancQueryOptions {
  /** Replaces the caller's StudyInstanceUID constraint (the access-constrained list); `undefined` keeps it. */
  studyUids?: readonly string[];
  /** Overrides the caller's paging (chunked mode fetches whole chunks). `null` drops it. */
  paging?: { limit?: number; offset: number } | null;
  /** Extra tags to include (chunked mode needs the sort keys). */
  extraInclude?: readonly string[];
}

/**
 * Percent-encodes a query value for Orthanc, which does not percent-decode most GET argument values (seen on 1.10.1:
 * `viewport=128%2C128`, `PatientName=A%5EB` and `contentType=application%2Fdicom` all fail). So every character
 * that is legal in a query component stays literal and only the rest (space, `%`, `&`, `=`, `+`, `#`, non-ASCII,
 * controls) is encoded.
 */
export function orthancEncode(value: string): string {
  return encodeURIComponent(value).replace(/%(2C|2F|3A|3B|40|5E|24|3F|5B|5D|7C)/gi, (_m, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** A query string for Orthanc from name/value pairs, encoded with {@link orthancEncode}. */
export function orthancQuery(pairs: Iterable<readonly [string, string]>): string {
  const parts: string[] = [];
  for (const [k, v] of pairs) parts.push(`${orthancEncode(k)}=${orthancEncode(v)}`);
  return parts.join('&');
}

/** The query string for Orthanc's QIDO-RS: hex tags, repeated `includefield`, UID lists comma-separated. */
export function orthancQueryString(q: QidoQuery, opts: OrthancQueryOptions = {}): string {
  const out: Array<readonly [string, string]> = [];
  const studyUids = opts.studyUids ?? q.studyUids;
  if (studyUids) out.push([STUDY_UID_TAG, studyUids.join(',')]);
  for (const [tag, value] of q.match) out.push([tag, value]);
  for (const tag of new Set([...q.includeFields, ...(opts.extraInclude ?? [])])) out.push(['includefield', tag]);
  if (q.fuzzy) out.push(['fuzzymatching', 'true']);
  const paging = opts.paging === undefined ? { limit: q.limit, offset: q.offset } : opts.paging;
  if (paging?.limit !== undefined) out.push(['limit', String(paging.limit)]);
  if (paging && paging.offset > 0) out.push(['offset', String(paging.offset)]);
  return orthancQuery(out);
}
