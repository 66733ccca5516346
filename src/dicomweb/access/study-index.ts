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
 * studies under the same UID with other PatientIDs, which no restricted caller may see (access/linked-orthanc-studies.ts). A link
 * that names no Orthanc study (no recorded id, a patient without identifiers) is not readable.
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientFilter } from '../../auth/access.ts';
import { type LinkedStudies, type LinkedStudy, linkedStudy, type StudyScope } from './linked-orthanc-studies.ts';
import { type StudyRestriction, UNRESTRICTED } from './study-restriction.ts';
import { onStudyLinksChanged } from '../../imaging/study-links.ts';
import { InvalidatableCache } from '../cache/invalidatable-cache.ts';

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

export class StudyIndex {
  readonly #db: DatabasePool;
  /** Study UID → links (grouped by the study UID). */
  readonly #byStudy: InvalidatableCache<readonly Link[]>;
  /** Study → links of the rows matching a restriction set: key `[restriction key, study UID]`. */
  readonly #byStudyRestricted: InvalidatableCache<readonly Link[]>;
  /** Allowed studies (UID → PatientID): key `[restriction key or '', patient ids or null for all]`. */
  readonly #byPatients: InvalidatableCache<LinkedStudies>;
  readonly #unsubscribe: () => void;
  static readonly MAX_ENTRIES = 10_000;

  constructor(db: DatabasePool, ttlMs: number) {
    this.#db = db;
    const opts = { ttlMs, maxWeight: StudyIndex.MAX_ENTRIES, whenFull: 'clear' } as const;
    this.#byStudy = new InvalidatableCache(opts);
    this.#byStudyRestricted = new InvalidatableCache(opts);
    this.#byPatients = new InvalidatableCache(opts);
    this.#unsubscribe = onStudyLinksChanged((uid) => this.invalidate(uid));
  }

  /** Drops the expired entries of every cache. */
  sweep(): number {
    let n = 0;
    for (const c of this.#caches()) n += c.sweep();
    return n;
  }

  /** Stops receiving invalidations (app shutdown). */
  close(): void {
    this.#unsubscribe();
    this.invalidate();
  }

  /**
   * Stops caching and drops everything (answers being read included): the cross-replica change signal
   * (src/dicomweb/cache/study-change-listener.ts) is down, so another replica's link change could go unseen. Until
   * {@link resume}.
   */
  suspend(): void {
    for (const c of this.#caches()) c.suspend();
  }

  /** Caches again, from empty: nothing read before this call is stored. */
  resume(): void {
    for (const c of this.#caches()) c.resume();
  }

  /**
   * Drops the study's links. Patient-set and restricted entries cannot be found by study (they have no group): a
   * change drops them all (cheap to rebuild). Every answer being read is then kept out of the cache (its ticket has no
   * group, so any invalidation makes it stale).
   */
  invalidate(studyUid?: string): void {
    for (const c of this.#caches()) c.invalidate(studyUid);
  }

  #caches(): readonly Pick<InvalidatableCache<unknown>, 'invalidate' | 'suspend' | 'resume' | 'sweep'>[] {
    return [this.#byStudy, this.#byStudyRestricted, this.#byPatients];
  }

  /** The EHR patient ids a study is linked to; empty when it is unknown or unlinked. */
  async patientsOfStudy(studyUid: string): Promise<readonly string[]> {
    return (await this.#linksOf(studyUid)).map((l) => l.patientId);
  }

  async #linksOf(studyUid: string): Promise<readonly Link[]> {
    const hit = this.#byStudy.get(studyUid);
    if (hit) return hit;
    const ticket = this.#byStudy.ticket();
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.patient_id, ${LINK_COLUMNS} FROM imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id
      WHERE r.study_instance_uid = ${studyUid} AND r.patient_id IS NOT NULL AND NOT r.deleted`);
    const links = rows.map((row) => toLink(studyUid, row));
    this.#byStudy.put(studyUid, ticket, links, studyUid);
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
    const hit = this.#byStudyRestricted.get(key);
    if (hit) return hit;
    const ticket = this.#byStudyRestricted.ticket();
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.patient_id, ${LINK_COLUMNS} FROM imaging_studies r LEFT JOIN patients p ON p.id = r.patient_id
      WHERE r.study_instance_uid = ${studyUid} AND NOT r.deleted AND ${restriction.condition}`);
    const links = rows.map((row) => toLink(studyUid, row));
    this.#byStudyRestricted.put(key, ticket, links);
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
    const hit = this.#byPatients.get(key);
    if (hit) return { all: false, studies: hit };
    const ticket = this.#byPatients.ticket();
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
    this.#byPatients.put(key, ticket, studies);
    return { all: false, studies };
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
