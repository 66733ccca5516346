/**
 * The DICOMweb side's view of the EHR's own study index (`imaging_studies`, written by the FHIR and STOW code):
 * which EHR patients a StudyInstanceUID is linked to, and which studies a set of patients has. A study is linked when a
 * live (not deleted) ImagingStudy row with its UID names a patient (`imaging_studies.patient_id`, the Patient id).
 * Read-only SQL through slonik's `sql` tag; the answers are cached briefly and invalidated when links change, in this
 * process ({@link onStudyLinksChanged}) and in every replica (the `imaging_studies` triggers that NOTIFY study
 * changes, see study-change-listener.ts); no caching while that signal is down.
 *
 * A caller's SMART v2 granular ImagingStudy restrictions ({@link StudyRestriction}, e.g. `modality=CT`) are ANDed into
 * the same queries (the ImagingStudy row must match them), and every cache key includes them, so an allowed set is
 * never shared between callers with different restrictions.
 *
 * Every answer for a restricted caller also names the Orthanc studies behind each allowed UID ({@link LinkedStudy}:
 * the row's recorded `orthanc_study_id`, else those of the patient's identifiers), since Orthanc may hold other
 * studies under the same UID with other PatientIDs, which no restricted caller may see (linked-studies.ts). A link
 * that names no Orthanc study (no recorded id, a patient without identifiers) is not readable.
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientFilter } from '../auth/access.ts';
import { type LinkedStudies, type LinkedStudy, linkedStudy } from './linked-studies.ts';
import type { StudyScope } from './qido-paging.ts';
import { type StudyRestriction, UNRESTRICTED } from './study-restriction.ts';
import { onStudyLinksChanged } from '../imaging/study-links.ts';

/** A live ImagingStudy row's link: its patient and the Orthanc studies it names (none: nothing readable). */
interface Link {
  readonly patientId: string;
  readonly study: LinkedStudy | undefined;
}

/**
 * The columns a {@link Link} is read from, over `imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id`: the
 * recorded Orthanc study and the patient's identifier values. With a recorded study only the MRN is read (what STOW-RS
 * and the change feed matched PatientID against: it names the study unless the study moved); without one, every
 * `Patient.identifier` value too.
 */
export const LINK_COLUMNS = sql.fragment`r.orthanc_study_id, CASE WHEN r.orthanc_study_id IS NOT NULL
  THEN ARRAY_REMOVE(ARRAY[p.mrn], NULL)
  ELSE ARRAY(
    SELECT DISTINCT v FROM (
      SELECT p.mrn AS v
      UNION ALL
      SELECT i->>'value' FROM jsonb_array_elements(
        CASE jsonb_typeof(p.content->'identifier') WHEN 'array' THEN p.content->'identifier' ELSE '[]'::jsonb END) i
    ) ids WHERE v IS NOT NULL AND v <> '')
  END AS identifiers`;

/**
 * What a caller may read under one StudyInstanceUID: nothing; whatever Orthanc holds under it (an all-patients caller
 * without restrictions, who also sees unlinked studies); or only the Orthanc study with this PatientID.
 */
export type StudyGrant =
  | { readonly kind: 'deny' }
  | { readonly kind: 'any' }
  | { readonly kind: 'linked'; readonly study: LinkedStudy };

const DENY: StudyGrant = { kind: 'deny' };

interface Entry<T> {
  value: T;
  expires: number;
}

export class StudyIndex {
  readonly #db: DatabasePool;
  readonly #ttlMs: number;
  readonly #byStudy = new Map<string, Entry<readonly Link[]>>();
  /** Study → links of the rows matching a restriction set: key `[restriction key, study UID]`. */
  readonly #byStudyRestricted = new Map<string, Entry<readonly Link[]>>();
  /** Allowed studies (UID → PatientID): key `[restriction key or '', patient ids or null for all]`. */
  readonly #byPatients = new Map<string, Entry<LinkedStudies>>();
  /** Bumped by every invalidation, so that an answer read before it is never cached after it. */
  #generation = 0;
  /** The cross-replica change signal is down: read the database every time (see {@link suspend}). */
  #suspended = false;
  readonly #unsubscribe: () => void;
  static readonly MAX_ENTRIES = 10_000;

  constructor(db: DatabasePool, ttlMs: number) {
    this.#db = db;
    this.#ttlMs = ttlMs;
    this.#unsubscribe = onStudyLinksChanged((uid) => this.invalidate(uid));
  }

  /** Stops receiving invalidations (app shutdown). */
  close(): void {
    this.#unsubscribe();
    this.invalidate();
  }

  /**
   * Stops caching and drops everything (answers being read included): the cross-replica change signal
   * (src/dicomweb/study-change-listener.ts) is down, so another replica's link change could go unseen. Until
   * {@link resume}.
   */
  suspend(): void {
    this.#suspended = true;
    this.invalidate();
  }

  /** Caches again, from empty: nothing read before this call is stored. */
  resume(): void {
    this.invalidate();
    this.#suspended = false;
  }

  invalidate(studyUid?: string): void {
    this.#generation++;
    if (studyUid === undefined) this.#byStudy.clear();
    else this.#byStudy.delete(studyUid);
    // Patient-set and restricted entries cannot be found by study: a change drops them all (cheap to rebuild).
    this.#byStudyRestricted.clear();
    this.#byPatients.clear();
  }

  /** The EHR patient ids a study is linked to; empty when it is unknown or unlinked. */
  async patientsOfStudy(studyUid: string): Promise<readonly string[]> {
    return (await this.#linksOf(studyUid)).map((l) => l.patientId);
  }

  async #linksOf(studyUid: string): Promise<readonly Link[]> {
    const hit = this.#get(this.#byStudy, studyUid);
    if (hit) return hit;
    const generation = this.#generation;
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.patient_id, ${LINK_COLUMNS} FROM imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id
      WHERE r.study_instance_uid = ${studyUid} AND r.patient_id IS NOT NULL AND NOT r.deleted`);
    const links = rows.map((row) => toLink(studyUid, row));
    this.#put(this.#byStudy, studyUid, links, generation);
    return links;
  }

  /**
   * What a caller with this patient filter (and these granular restrictions) may read under a study UID. Unknown and
   * unlinked studies: only with `all` and no restriction ('any'). Otherwise the study must be linked to one of the
   * caller's patients (with `all`: to any patient) by a row matching the restriction, and only the Orthanc studies that
   * row names may be read ('linked').
   */
  async grant(
    filter: PatientFilter,
    studyUid: string,
    restriction: StudyRestriction = UNRESTRICTED,
  ): Promise<StudyGrant> {
    if (restriction.kind === 'deny') return DENY;
    if (!filter.all && filter.patientIds.length === 0) return DENY;
    if (filter.all && restriction.kind === 'none') return { kind: 'any' };
    const links =
      restriction.kind === 'sql' ? await this.#restrictedStudy(studyUid, restriction) : await this.#linksOf(studyUid);
    const link = links.find((l) => l.study && (filter.all || filter.patientIds.includes(l.patientId)));
    return link?.study ? { kind: 'linked', study: link.study } : DENY;
  }

  /** The links of the live ImagingStudy rows with this UID that match the restriction. */
  async #restrictedStudy(
    studyUid: string,
    restriction: Extract<StudyRestriction, { kind: 'sql' }>,
  ): Promise<readonly Link[]> {
    const key = JSON.stringify([restriction.key, studyUid]);
    const hit = this.#get(this.#byStudyRestricted, key);
    if (hit) return hit;
    const generation = this.#generation;
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.patient_id, ${LINK_COLUMNS} FROM imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id
      WHERE r.study_instance_uid = ${studyUid} AND NOT r.deleted AND ${restriction.condition}`);
    const links = rows.map((row) => toLink(studyUid, row));
    this.#put(this.#byStudyRestricted, key, links, generation);
    return links;
  }

  /**
   * The studies a caller may search, as the QIDO planner wants them: UID → its linked Orthanc studies. With a
   * restriction even an all-patients caller gets an explicit set (the matching studies), so that paging applies to the
   * restricted set only.
   */
  async scope(filter: PatientFilter, restriction: StudyRestriction = UNRESTRICTED): Promise<StudyScope> {
    if (restriction.kind === 'deny') return { all: false, studies: new Map() };
    if (filter.all && restriction.kind === 'none') return filter;
    if (!filter.all && filter.patientIds.length === 0) return { all: false, studies: new Map() };
    const ids = filter.all ? null : [...new Set(filter.patientIds)].sort();
    const key = JSON.stringify([restriction.kind === 'sql' ? restriction.key : '', ids]);
    const hit = this.#get(this.#byPatients, key);
    if (hit) return { all: false, studies: hit };
    const generation = this.#generation;
    const conds = [sql.fragment`r.study_instance_uid IS NOT NULL`, sql.fragment`NOT r.deleted`];
    if (ids) conds.push(sql.fragment`r.patient_id = ANY(${sql.array(ids, 'text')})`);
    if (restriction.kind === 'sql') conds.push(restriction.condition);
    const rows = (await this.#db.any(sql.unsafe`
      SELECT r.study_instance_uid, ${LINK_COLUMNS} FROM imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id
      WHERE ${sql.join(conds, sql.fragment` AND `)}`)) as readonly { study_instance_uid: string }[];
    const studies = new Map<string, LinkedStudy>();
    for (const row of rows) {
      const uid = String(row.study_instance_uid);
      const study = toLink(uid, row).study;
      if (study) studies.set(uid, study);
    }
    this.#put(this.#byPatients, key, studies, generation);
    return { all: false, studies };
  }

  #get<T>(map: Map<string, Entry<T>>, key: string): T | undefined {
    const e = map.get(key);
    if (!e || this.#suspended) return undefined;
    if (e.expires > Date.now()) return e.value;
    map.delete(key);
    return undefined;
  }

  #put<T>(map: Map<string, Entry<T>>, key: string, value: T, generation: number): void {
    if (this.#ttlMs <= 0 || this.#suspended || generation !== this.#generation) return;
    if (map.size >= StudyIndex.MAX_ENTRIES) map.clear();
    map.set(key, { value, expires: Date.now() + this.#ttlMs });
  }
}

/** A row with {@link LINK_COLUMNS} (and `patient_id`, when selected) as a {@link Link}. */
function toLink(studyUid: string, row: unknown): Link {
  const r = row as {
    patient_id?: string | null;
    orthanc_study_id: string | null;
    identifiers: readonly string[] | null;
  };
  const identifiers = (r.identifiers ?? []).map(String);
  return { patientId: String(r.patient_id ?? ''), study: linkedStudy(studyUid, r.orthanc_study_id, identifiers) };
}
