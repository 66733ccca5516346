/**
 * The DICOMweb side's view of the EHR's own study index (`imaging_studies`, written by the FHIR and STOW code):
 * which EHR patients a StudyInstanceUID is linked to, and which studies a set of patients has. A study is linked when a
 * live (not deleted) ImagingStudy row with its UID names a patient (`imaging_studies.patient_id`, the Patient id).
 * Read-only SQL through slonik's `sql` tag; the answers are cached briefly and invalidated when links change.
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientFilter } from '../auth/access.ts';
import type { StudyScope } from './qido-paging.ts';

interface Entry<T> {
  value: T;
  expires: number;
}

/** Every live index, so that {@link invalidateStudyLinks} reaches all of them (several apps in one test process). */
const live = new Set<StudyIndex>();

/**
 * Call after any change of a study ↔ patient link (STOW linking a study, manual reconciliation, an ImagingStudy
 * created, re-pointed or deleted). Without `studyUid`, everything is dropped.
 */
export function invalidateStudyLinks(studyUid?: string): void {
  for (const index of live) index.invalidate(studyUid);
}

export class StudyIndex {
  readonly #db: DatabasePool;
  readonly #ttlMs: number;
  readonly #byStudy = new Map<string, Entry<readonly string[]>>();
  readonly #byPatients = new Map<string, Entry<ReadonlySet<string>>>();
  /** Bumped by every invalidation, so that an answer read before it is never cached after it. */
  #generation = 0;
  static readonly MAX_ENTRIES = 10_000;

  constructor(db: DatabasePool, ttlMs: number) {
    this.#db = db;
    this.#ttlMs = ttlMs;
    live.add(this);
  }

  /** Stops receiving invalidations (app shutdown). */
  close(): void {
    live.delete(this);
    this.invalidate();
  }

  invalidate(studyUid?: string): void {
    this.#generation++;
    if (studyUid === undefined) this.#byStudy.clear();
    else this.#byStudy.delete(studyUid);
    // Patient-set entries cannot be found by study: a link change drops them all (they are cheap to rebuild).
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

  /** May a caller with this patient filter see the study? Unknown and unlinked studies: only with `all`. */
  async mayRead(filter: PatientFilter, studyUid: string): Promise<boolean> {
    if (filter.all) return true;
    if (filter.patientIds.length === 0) return false;
    const linked = await this.patientsOfStudy(studyUid);
    return linked.some((id) => filter.patientIds.includes(id));
  }

  /** The set of studies a caller may search, as the QIDO planner wants it. */
  async scope(filter: PatientFilter): Promise<StudyScope> {
    if (filter.all) return filter;
    if (filter.patientIds.length === 0) return { all: false, studyUids: new Set() };
    const ids = [...new Set(filter.patientIds)].sort();
    const key = ids.join('\n');
    const hit = this.#get(this.#byPatients, key);
    if (hit) return { all: false, studyUids: hit };
    const generation = this.#generation;
    const rows = await this.#db.any(sql.unsafe`
      SELECT study_instance_uid FROM imaging_studies
      WHERE patient_id = ANY(${sql.array(ids, 'text')}) AND study_instance_uid IS NOT NULL AND NOT deleted`);
    const uids = new Set(rows.map((r) => String((r as { study_instance_uid: string }).study_instance_uid)));
    this.#put(this.#byPatients, key, uids, generation);
    return { all: false, studyUids: uids };
  }

  #get<T>(map: Map<string, Entry<T>>, key: string): T | undefined {
    const e = map.get(key);
    if (!e) return undefined;
    if (e.expires > Date.now()) return e.value;
    map.delete(key);
    return undefined;
  }

  #put<T>(map: Map<string, Entry<T>>, key: string, value: T, generation: number): void {
    if (this.#ttlMs <= 0 || generation !== this.#generation) return;
    if (map.size >= StudyIndex.MAX_ENTRIES) map.clear();
    map.set(key, { value, expires: Date.now() + this.#ttlMs });
  }
}
