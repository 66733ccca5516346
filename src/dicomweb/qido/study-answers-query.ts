/**
 * QIDO-RS study-level searches answered from the EHR's own study index (`qido_study_answers`, see
 * qido/study-answers-store.ts): which queries the index can answer exactly as Orthanc would, and their translation to SQL.
 * Pure: no I/O. Anything the index does not reproduce exactly is planned for Orthanc (`kind: 'orthanc'`).
 *
 * Matching (DICOM PS3.18 §8.3.4, PS3.4 §C.2.2.2) as Orthanc 1.10 with its PostgreSQL index does it at study level,
 * checked against the real Orthanc by tests/qido-study-index.int.test.ts:
 * - PatientID, PatientName, AccessionNumber and StudyDescription are Orthanc "identifier" tags: both the stored value
 *   and the query value are normalized ({@link normalizeIdentifier}: ASCII only, `%`/`_` as spaces, upper case,
 *   trimmed), so matching ignores case; single value matching is equality, `*`/`?` wildcard matching (§C.2.2.2.4);
 * - StudyDate: single value, or a range `from-to`, `-to`, `from-` (§C.2.2.2.5);
 * - ModalitiesInStudy: one code (or wildcard) matched against every modality of the study, ignoring case;
 * - an empty value is universal matching (§C.2.2.2.3): no constraint, the attribute is returned; `*` is wildcard
 *   matching, which a study without the attribute does not pass (an absent attribute matches nothing, an empty one
 *   only what matches the empty string: `*`, and a range's open start `-to`);
 * - StudyInstanceUID list matching (§C.2.2.2.2) constrains the candidate studies.
 * Values Orthanc would receive percent-encoded (spaces, `%`, `+`...) or with commas (Orthanc reads lists there) go to
 * Orthanc, as do fuzzy matching, other matching keys and includefields outside what the index stores.
 */
import { type FragmentSqlToken, sql } from 'slonik';
import { INCLUDE_ALL } from './include-all.ts';
import { orthancEncode, type QidoQuery } from '../qido-query.ts';

/** The attributes the index stores per study: exactly what it asks Orthanc for when filling (includefield=all). */
export const STORED_TAGS: ReadonlySet<string> = new Set(INCLUDE_ALL.study);

/**
 * Orthanc's default study-level attributes (DICOMweb plugin, no includefield): returned for every match, together
 * with the matching keys and the includefields.
 */
export const DEFAULT_STUDY_TAGS: readonly string[] = [
  '00080005', // SpecificCharacterSet
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080061', // ModalitiesInStudy
  '00080090', // ReferringPhysicianName
  '00080201', // TimezoneOffsetFromUTC
  '00081190', // RetrieveURL
  '00100010', // PatientName
  '00100020', // PatientID
  '00100030', // PatientBirthDate
  '00100040', // PatientSex
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
  '00201206', // NumberOfStudyRelatedSeries
  '00201208', // NumberOfStudyRelatedInstances
];

export const TAG = {
  PatientID: '00100020',
  PatientName: '00100010',
  AccessionNumber: '00080050',
  StudyDescription: '00081030',
  StudyDate: '00080020',
  ModalitiesInStudy: '00080061',
  StudyInstanceUID: '0020000D',
  RetrieveURL: '00081190',
} as const;

/** The normalized text columns of `qido_study_answers`, by tag. Column names are constants, never user input. */
export const TEXT_COLUMNS = {
  [TAG.PatientID]: 'patient_id',
  [TAG.PatientName]: 'patient_name',
  [TAG.AccessionNumber]: 'accession_number',
  [TAG.StudyDescription]: 'study_description',
} as const satisfies Record<string, string>;
type TextColumn = (typeof TEXT_COLUMNS)[keyof typeof TEXT_COLUMNS];

export type IndexCondition =
  | { readonly kind: 'text'; readonly column: TextColumn; readonly op: 'eq' | 'like'; readonly value: string }
  | { readonly kind: 'date'; readonly from?: string; readonly to?: string }
  | { readonly kind: 'modality'; readonly op: 'eq' | 'like'; readonly value: string };

export type IndexPlan =
  | {
      readonly kind: 'index';
      readonly conditions: readonly IndexCondition[];
      /** The attributes of each answer: Orthanc's defaults, the matching keys and the includefields. */
      readonly tags: ReadonlySet<string>;
      readonly studyUids?: readonly string[];
      readonly limit?: number;
      readonly offset: number;
    }
  | { readonly kind: 'orthanc'; readonly reason: string };

/**
 * Orthanc's normalization of identifier tags (`ServerToolbox::NormalizeIdentifier`): keeps printable ASCII and
 * spaces (so non-ASCII letters disappear), turns `%` and `_` into spaces, upper-cases and trims.
 */
export function normalizeIdentifier(value: string): string {
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '%' || ch === '_') out += ' ';
    else if (c >= 0x20 && c < 0x7f) out += ch;
  }
  return out.toUpperCase().trim();
}

const orthanc = (reason: string): IndexPlan => ({ kind: 'orthanc', reason });
const hasWildcard = (v: string) => v.includes('*') || v.includes('?');

/** Plans a study-level QIDO query (already parsed and validated by parseQidoQuery) for the index, or for Orthanc. */
export function planIndexQuery(q: QidoQuery): IndexPlan {
  if (q.fuzzy) return orthanc('fuzzymatching');
  const tags = new Set(DEFAULT_STUDY_TAGS);
  for (const t of q.includeFields) {
    if (!STORED_TAGS.has(t)) return orthanc(`includefield ${t}`);
    tags.add(t);
  }
  const conditions: IndexCondition[] = [];
  for (const [tag, value] of q.match) {
    if (!STORED_TAGS.has(tag)) return orthanc(`matching key ${tag}`);
    tags.add(tag);
    // Universal matching. (`*` is not: Orthanc's `*` wants the attribute present, see conditionFor.)
    if (value === '') continue;
    if (orthancEncode(value) !== value || value.includes(',')) return orthanc(`value of ${tag} needs encoding`);
    const c = conditionFor(tag, value);
    if (!c) return orthanc(`matching on ${tag}`);
    conditions.push(c);
  }
  return {
    kind: 'index',
    conditions,
    tags,
    offset: q.offset,
    ...(q.limit === undefined ? {} : { limit: q.limit }),
    ...(q.studyUids ? { studyUids: q.studyUids } : {}),
  };
}

function conditionFor(tag: string, value: string): IndexCondition | undefined {
  if (Object.hasOwn(TEXT_COLUMNS, tag)) {
    const column = TEXT_COLUMNS[tag as keyof typeof TEXT_COLUMNS];
    const v = normalizeIdentifier(value);
    return { kind: 'text', column, op: hasWildcard(v) ? 'like' : 'eq', value: v };
  }
  if (tag === TAG.StudyDate) {
    if (!/^(\d{8})?(-(\d{8})?)?$/.test(value)) return undefined;
    if (!value.includes('-')) return { kind: 'date', from: value, to: value };
    const [from = '', to = ''] = value.split('-');
    return { kind: 'date', ...(from ? { from } : {}), ...(to ? { to } : {}) };
  }
  if (tag === TAG.ModalitiesInStudy) {
    const v = value.toUpperCase();
    return { kind: 'modality', op: hasWildcard(v) ? 'like' : 'eq', value: v };
  }
  return undefined;
}

/** A DICOM wildcard pattern as a LIKE pattern (`*` → `%`, `?` → `_`; LIKE's own characters escaped). */
export function likePattern(value: string): string {
  return value
    .replace(/[\\%_]/g, (c) => `\\${c}`)
    .replace(/\*/g, '%')
    .replace(/\?/g, '_');
}

/** One condition as SQL over `qido_study_answers` aliased `a`; every value is a bound parameter. */
export function conditionSql(c: IndexCondition): FragmentSqlToken {
  switch (c.kind) {
    case 'text': {
      const col = sql.identifier(['a', c.column]);
      return c.op === 'eq' ? sql.fragment`${col} = ${c.value}` : sql.fragment`${col} LIKE ${likePattern(c.value)}`;
    }
    case 'date': {
      // An empty StudyDate is a value below every date for Orthanc; an absent one (NULL) matches no range.
      const parts = [sql.fragment`a.study_date IS NOT NULL`];
      if (c.from !== undefined) parts.push(sql.fragment`a.study_date >= ${c.from}`);
      if (c.to !== undefined) parts.push(sql.fragment`a.study_date <= ${c.to}`);
      return sql.fragment`(${sql.join(parts, sql.fragment` AND `)})`;
    }
    case 'modality':
      return c.op === 'eq'
        ? sql.fragment`${c.value} = ANY(a.modalities)`
        : sql.fragment`EXISTS (SELECT 1 FROM unnest(a.modalities) m WHERE m LIKE ${likePattern(c.value)})`;
  }
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

/**
 * The matching columns of one study answer (Orthanc's DICOM JSON object), normalized like the query values: `null`
 * when the attribute is absent, `''` when it is empty (Orthanc matches the two differently).
 */
export function matchingColumns(item: DicomJson): {
  patientId: string | null;
  patientName: string | null;
  accessionNumber: string | null;
  studyDescription: string | null;
  studyDate: string | null;
  modalities: string[];
} {
  const text = (tag: string) => {
    if (item[tag] === undefined) return null;
    const v = item[tag]?.Value?.[0];
    if (v === undefined || v === null) return '';
    if (typeof v === 'object') {
      const pn = v as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
      return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
    }
    return String(v);
  };
  const normalized = (tag: string) => {
    const t = text(tag);
    return t === null ? null : normalizeIdentifier(t);
  };
  return {
    patientId: normalized(TAG.PatientID),
    patientName: normalized(TAG.PatientName),
    accessionNumber: normalized(TAG.AccessionNumber),
    studyDescription: normalized(TAG.StudyDescription),
    studyDate: text(TAG.StudyDate)?.trim() ?? null,
    modalities: (item[TAG.ModalitiesInStudy]?.Value ?? []).map((m) => String(m).trim().toUpperCase()),
  };
}

/**
 * The answer for one stored study: only the planned attributes, and RetrieveURL (0008,1190) pointing at the
 * facade's public DICOMweb root (as the Orthanc path writes it, see public-url.ts).
 */
export function projectAnswer(stored: DicomJson, tags: ReadonlySet<string>, publicRoot: string): DicomJson {
  const out: DicomJson = {};
  for (const [tag, el] of Object.entries(stored)) {
    if (!tags.has(tag)) continue;
    if (tag === TAG.RetrieveURL && el?.Value) {
      const uid = stored[TAG.StudyInstanceUID]?.Value?.[0];
      out[tag] = { ...el, Value: [`${publicRoot}/studies/${String(uid)}`] };
    } else out[tag] = el;
  }
  return out;
}
