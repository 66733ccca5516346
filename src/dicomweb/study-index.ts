/**
 * The DICOMweb side's view of the EHR's own study index (`imaging_studies`, written by the FHIR and STOW code):
 * which EHR patients a StudyInstanceUID is linked to, and which studies a set of patients has. A study is linked when a
 * live (not deleted) ImagingStudy row with its UID names a patient (`imaging_studies.patient_id`, the Patient id).
 * Read-only SQL through slonik's `sql` tag; the answers are cached briefly and invalidated when links change, in this
 * process ({@link onStudyLinksChanged}) and in every replica (imaging_studies triggers of migration 012, see
 * study-change-listener.ts); no caching while that signal is down.
 *
 * A caller's SMART v2 granular ImagingStudy restrictions ({@link StudyRestriction}, e.g. `modality=CT`) are ANDed into
 * the same queries (the ImagingStudy row must match them), and every cache key includes them, so an allowed set is
 * never shared between callers with different restrictions.
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientFilter } from '../auth/access.ts';
import type { StudyScope } from './qido-paging.ts';
import { type StudyRestriction, UNRESTRICTED } from './study-restriction.ts';
import { onStudyLinksChanged } from '../imaging/study-links.ts';

interface RestrictedStudy {
  /** A live ImagingStudy row with the UID matches the restriction. */
  readonly matches: boolean;
  /** The patients named by the matching rows. */
  readonly patients: readonly string[];
}

interface Entry<T> {
  value: T;
  expires: number;
}

export class StudyIndex {
  readonly #db: DatabasePool;
  readonly #ttlMs: number;
  readonly #byStudy = new Map<string, Entry<readonly string[]>>();
  /** Study → patients of the matching rows, per restriction set: key `[restriction key, study UID]`. */
  readonly #byStudyRestricted = new Map<string, Entry<RestrictedStudy>>();
  /** Allowed UID sets: key `[restriction key or '', patient ids or null for all]`. */
  readonly #byPatients = new Map<string, Entry<ReadonlySet<string>>>();
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
    const hit = this.#get(this.#byStudy, studyUid);
    if (hit) return hit;
    const generation = this.#generation;
    const rows = await this.#db.any(sql.unsafe`
      SELECT patient_id FROM imaging_studies
      WHERE study_instance_uid = ${studyUid} AND patient_id IS NOT NULL AND NOT deleted`);
    const ids = rows.map((r) => String((r as { patient_id: string }).patient_id));
    this.#put(this.#byStudy, studyUid, ids, generation);
    return ids;
  }

  /**
   * May a caller with this patient filter (and these granular restrictions) see the study? Unknown and unlinked
   * studies: only with `all` and no restriction. With a restriction the study's ImagingStudy must match it.
   */
  async mayRead(
    filter: PatientFilter,
    studyUid: string,
    restriction: StudyRestriction = UNRESTRICTED,
  ): Promise<boolean> {
    if (restriction.kind === 'deny') return false;
    if (!filter.all && filter.patientIds.length === 0) return false;
    if (restriction.kind === 'sql') {
      const m = await this.#restrictedStudy(studyUid, restriction);
      return filter.all ? m.matches : m.patients.some((id) => filter.patientIds.includes(id));
    }
    if (filter.all) return true;
    const linked = await this.patientsOfStudy(studyUid);
    return linked.some((id) => filter.patientIds.includes(id));
  }

  /** Does a live ImagingStudy row with this UID match the restriction, and which patients do the matching rows name? */
  async #restrictedStudy(
    studyUid: string,
    restriction: Extract<StudyRestriction, { kind: 'sql' }>,
  ): Promise<RestrictedStudy> {
    const key = JSON.stringify([restriction.key, studyUid]);
    const hit = this.#get(this.#byStudyRestricted, key);
    if (hit) return hit;
    const generation = this.#generation;
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.patient_id FROM imaging_studies r
      WHERE r.study_instance_uid = ${studyUid} AND NOT r.deleted AND ${restriction.condition}`);
    const patients = rows
      .map((r) => (r as { patient_id: string | null }).patient_id)
      .filter((id): id is string => id !== null)
      .map(String);
    const value: RestrictedStudy = { matches: rows.length > 0, patients };
    this.#put(this.#byStudyRestricted, key, value, generation);
    return value;
  }

  /**
   * The set of studies a caller may search, as the QIDO planner wants it. With a restriction even an all-patients
   * caller gets an explicit set (the matching studies), so that paging applies to the restricted set only.
   */
  async scope(filter: PatientFilter, restriction: StudyRestriction = UNRESTRICTED): Promise<StudyScope> {
    if (restriction.kind === 'deny') return { all: false, studyUids: new Set() };
    if (filter.all && restriction.kind === 'none') return filter;
    if (!filter.all && filter.patientIds.length === 0) return { all: false, studyUids: new Set() };
    const ids = filter.all ? null : [...new Set(filter.patientIds)].sort();
    const key = JSON.stringify([restriction.kind === 'sql' ? restriction.key : '', ids]);
    const hit = this.#get(this.#byPatients, key);
    if (hit) return { all: false, studyUids: hit };
    const generation = this.#generation;
    const conds = [sql.fragment`r.study_instance_uid IS NOT NULL`, sql.fragment`NOT r.deleted`];
    if (ids) conds.push(sql.fragment`r.patient_id = ANY(${sql.array(ids, 'text')})`);
    if (restriction.kind === 'sql') conds.push(restriction.condition);
    const rows = await this.#db.any(sql.unsafe`
      SELECT r.study_instance_uid FROM imaging_studies r WHERE ${sql.join(conds, sql.fragment` AND `)}`);
    const uids = new Set(rows.map((r) => String((r as { study_instance_uid: string }).study_instance_uid)));
    this.#put(this.#byPatients, key, uids, generation);
    return { all: false, studyUids: uids };
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
