/**
 * Study-level QIDO-RS (DICOM PS3.18 §10.6, `GET /studies`) for restricted callers answered from PostgreSQL: the EHR
 * keeps, per linked study, Orthanc's own study-level answer (fetched with every attribute of `includefield=all`) and
 * its matching attributes (table `qido_study_answers`). One SQL query finds the caller's studies in the
 * EHR's study index (`imaging_studies`: live rows of the caller's patients, ANDed with its granular restrictions),
 * checks that their stored answers are still valid, matches and pages them; studies whose answers are missing or
 * stale are fetched from Orthanc once (in chunks of at most `maxUids` UIDs) and stored, then the query runs again.
 *
 * Validity lives in the database (see `migrations/*qido-study-index*.sql`), so replicas agree:
 * - `source_id`/`source_version`: the ImagingStudy row and version read BEFORE asking Orthanc. Every change of a
 *   linked study's content that the EHR records writes a new ImagingStudy version after Orthanc changed (STOW-RS
 *   merges, change-feed linking, deletion sweep → entered-in-error, relink), so an answer read at the old version is
 *   stale from that commit on; a UID that moved to another ImagingStudy row is stale whatever its version.
 * - `epoch`: explicit invalidations for content changes without a new version ({@link StudyAnswersStore.invalidate},
 *   called for every study-content signal: an undone STOW-RS, a stable study the change feed found up to date or
 *   held). A fill stores its answers only if the epoch it read first is still current.
 * - `filled_at`: answers older than `maxAgeMs` are refetched (changes made in Orthanc directly, unseen by the EHR).
 *
 * Not used (the caller gets the Orthanc path): all-patients callers without restrictions (they also see unlinked
 * studies), queries the index cannot answer exactly (qido/study-answers-query.ts), and any failure here.
 *
 * Orthanc may hold several studies under one UID (other PatientIDs: a C-STORE under another MRN, a held STOW-RS), and
 * a fill stores all of their answers; each is marked `linked` when it is one of the Orthanc studies the
 * ImagingStudy row read for the fill links (access/linked-orthanc-studies.ts: its recorded `orthanc_study_id`, or for a link without
 * one, a PatientID among the patient's identifiers), and a search returns linked answers only, before paging. The mark
 * is as valid as the fill: a new ImagingStudy version (moved to another patient, Orthanc study recorded, ...) makes it
 * stale; a change of a patient's identifiers alone is seen at the latest after `maxAgeMs`.
 */
import { type DatabasePool, type FragmentSqlToken, sql } from 'slonik';
import type { PatientFilter } from '../../auth/access.ts';
import { type OrthancProxy, readText } from '../../orthanc/proxy.ts';
import { DicomWebError } from '../errors.ts';
import { conditionSql, type IndexPlan, matchingColumns, projectAnswer, STORED_TAGS } from './study-answers-query.ts';
import { isLinkedAnswer, linkedStudy } from '../access/linked-orthanc-studies.ts';
import { orthancQueryString } from '../qido-query.ts';
import { DICOM_JSON, upstreamError } from '../relay.ts';
import { LINK_COLUMNS } from '../access/study-index.ts';
import type { StudyRestriction } from '../access/study-restriction.ts';
import { EhrError, type ErrorCode } from '../../errors/base.ts';

type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;
type IndexQuery = Extract<IndexPlan, { kind: 'index' }>;

export interface StudyAnswersStoreOptions {
  db: DatabasePool;
  proxy: OrthancProxy;
  /** Orthanc's DICOMweb root path, e.g. `/dicom-web`. */
  dicomWebRoot: string;
  /** The facade's public DICOMweb root, for RetrieveURL. */
  publicRoot: string;
  maxUids: number;
  /** Answers older than this are refetched; 0 turns the index off. */
  maxAgeMs: number;
  /**
   * Tags this process's epoch bumps (session setting `ehr.study_change_origin`, read by the `imaging_studies` NOTIFY triggers),
   * so that its own cross-replica study-change listener skips their echo: it already invalidated in process.
   */
  origin?: string;
}

/** What one answered search did (for the decision log and tests). */
export interface IndexAnswer {
  items: DicomJson[];
  /** Studies fetched from Orthanc for this search. */
  filled: number;
}

/** The stored answers could not be made valid (concurrent invalidations): the caller asks Orthanc instead. */
export class StudyIndexBusyError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOMWEB_STUDY_INDEX_BUSY';
  override name = 'StudyIndexBusyError';
}

const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export class StudyAnswersStore {
  readonly #o: StudyAnswersStoreOptions;
  readonly #pending = new Set<Promise<void>>();
  /** Fetches in flight, by study. */
  readonly #filling = new Map<string, Promise<void>>();
  /** Searches answered from the index, and studies fetched from Orthanc to do so (diagnostics and tests). */
  readonly stats = { answered: 0, fetched: 0 };

  constructor(opts: StudyAnswersStoreOptions) {
    this.#o = opts;
  }

  get enabled(): boolean {
    return this.#o.maxAgeMs > 0;
  }

  /** Does this caller's view suit the index? (All-patients callers without restrictions also see unlinked studies.) */
  covers(filter: PatientFilter, restriction: StudyRestriction): boolean {
    if (!this.enabled || restriction.kind === 'deny') return false;
    if (filter.all) return restriction.kind === 'sql';
    return filter.patientIds.length > 0;
  }

  /** Answers a planned search for a caller the index {@link covers}. */
  async search(filter: PatientFilter, restriction: StudyRestriction, q: IndexQuery): Promise<IndexAnswer> {
    let filled = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const { stale, page } = await this.#query(filter, restriction, q);
      if (stale.length === 0) {
        const items = page.map((text) => projectAnswer(JSON.parse(text) as DicomJson, q.tags, this.#o.publicRoot));
        this.stats.answered++;
        return { items, filled };
      }
      filled += await this.#fillOnce(stale);
    }
    throw new StudyIndexBusyError('study answers kept changing while being refreshed');
  }

  /**
   * The candidates' freshness and the page. Order: byte order of `uid|`, exactly the order in which the chunked
   * Orthanc path merges (qido/paging.ts `qidoSortKey`), whatever the database's collation.
   */
  async #query(
    filter: PatientFilter,
    restriction: StudyRestriction,
    q: IndexQuery,
  ): Promise<{ stale: string[]; page: string[] }> {
    const conds: FragmentSqlToken[] = [sql.fragment`r.study_instance_uid IS NOT NULL`, sql.fragment`NOT r.deleted`];
    if (!filter.all) conds.push(sql.fragment`r.patient_id = ANY(${sql.array([...filter.patientIds], 'text')})`);
    if (restriction.kind === 'sql') conds.push(restriction.condition);
    if (q.studyUids) conds.push(sql.fragment`r.study_instance_uid = ANY(${sql.array([...q.studyUids], 'text')})`);
    const match = q.conditions.map(conditionSql);
    const where = match.length ? sql.fragment`WHERE ${sql.join(match, sql.fragment` AND `)}` : sql.fragment``;
    const limit = q.limit === undefined ? sql.fragment`LIMIT ALL` : sql.fragment`LIMIT ${q.limit}`;
    const row = (await this.#o.db.one(sql.unsafe`
      WITH cand AS (
        SELECT r.study_instance_uid AS uid, r.id, r.version_id FROM imaging_studies r
        WHERE ${sql.join(conds, sql.fragment` AND `)}
      ), state AS (
        SELECT c.uid,
          coalesce(f.filled_epoch = f.epoch AND f.source_id = c.id AND f.source_version = c.version_id
            AND f.filled_at > now() - ${this.#o.maxAgeMs} * interval '1 millisecond', false) AS fresh
        FROM cand c LEFT JOIN qido_study_fills f ON f.study_instance_uid = c.uid
      )
      SELECT
        ARRAY(SELECT s.uid FROM state s WHERE NOT s.fresh ORDER BY s.uid) AS stale,
        ARRAY(SELECT a.answer::text FROM qido_study_answers a JOIN state s ON s.uid = a.study_instance_uid AND s.fresh
                AND a.linked
              ${where} ORDER BY (a.study_instance_uid || '|') COLLATE "C", a.ordinal ${limit} OFFSET ${q.offset}) AS page`)) as {
      stale: string[];
      page: string[];
    };
    return row;
  }

  /**
   * {@link fill} with concurrent searches of this process sharing the fetch of a study (e.g. c=4 clients after expiry);
   * returns how many studies this call fetched itself.
   */
  async #fillOnce(uids: readonly string[]): Promise<number> {
    const waits: Promise<void>[] = [];
    const mine = uids.filter((uid) => {
      const running = this.#filling.get(uid);
      if (running) waits.push(running);
      return !running;
    });
    if (mine.length) {
      const p = this.fill(mine).finally(() => {
        for (const uid of mine) if (this.#filling.get(uid) === p) this.#filling.delete(uid);
      });
      for (const uid of mine) this.#filling.set(uid, p);
      waits.push(p);
      this.stats.fetched += mine.length;
    }
    // A failed shared fetch fails every search waiting for it: each falls back to Orthanc.
    await Promise.all(waits);
    return mine.length;
  }

  /**
   * Fetches the studies' answers from Orthanc and stores them, each at the ImagingStudy version and epoch read
   * before asking Orthanc; a study invalidated meanwhile is left stale (the next search fetches it again).
   */
  async fill(uids: readonly string[]): Promise<void> {
    const sorted = [...new Set(uids)].sort();
    const read = (await this.#o.db.any(sql.unsafe`
      SELECT r.study_instance_uid AS uid, r.id, r.version_id, coalesce(f.epoch, 0)::text AS epoch, ${LINK_COLUMNS}
      FROM imaging_studies r LEFT JOIN qido_study_fills f ON f.study_instance_uid = r.study_instance_uid
        LEFT JOIN patients p ON p.id = r.patient_id
      WHERE r.study_instance_uid = ANY(${sql.array(sorted, 'text')}) AND NOT r.deleted`)) as readonly {
      uid: string;
      id: string;
      version_id: number;
      epoch: string;
      orthanc_study_id: string | null;
      identifiers: readonly string[] | null;
    }[];
    if (read.length === 0) return;
    const answers = await this.#fetch(read.map((r) => r.uid));
    await this.#o.db.transaction(async (tx) => {
      const ids = read.map((r) => r.uid).sort();
      await tx.query(sql.unsafe`
        INSERT INTO qido_study_fills (study_instance_uid) SELECT unnest(${sql.array(ids, 'text')}) ORDER BY 1
        ON CONFLICT DO NOTHING`);
      const now = (await tx.any(sql.unsafe`
        SELECT study_instance_uid AS uid, epoch::text AS epoch FROM qido_study_fills
        WHERE study_instance_uid = ANY(${sql.array(ids, 'text')}) ORDER BY study_instance_uid FOR UPDATE`)) as readonly {
        uid: string;
        epoch: string;
      }[];
      const current = new Map(now.map((r) => [r.uid, r.epoch]));
      const kept = read.filter((r) => current.get(r.uid) === r.epoch);
      if (kept.length === 0) return;
      const keptIds = kept.map((r) => r.uid);
      await tx.query(sql.unsafe`
        DELETE FROM qido_study_answers WHERE study_instance_uid = ANY(${sql.array(keptIds, 'text')})`);
      const rows = kept.flatMap((r) => {
        const study = linkedStudy(r.uid, r.orthanc_study_id, (r.identifiers ?? []).map(String));
        const linked = study ? new Map([[r.uid, study]]) : new Map();
        return (answers.get(r.uid) ?? []).map((item, ordinal) => ({
          uid: r.uid,
          ordinal,
          item,
          linked: isLinkedAnswer(item, linked),
        }));
      });
      if (rows.length) {
        const cols = rows.map((x) => matchingColumns(x.item));
        const text = (f: (i: number) => string | null) =>
          sql.array(
            rows.map((_, i) => f(i)),
            'text',
          );
        await tx.query(sql.unsafe`
          INSERT INTO qido_study_answers (study_instance_uid, ordinal, answer, patient_id, patient_name,
            accession_number, study_description, study_date, modalities, linked)
          SELECT u, o, a::jsonb, pid, pn, acc, descr, dt, ARRAY(SELECT jsonb_array_elements_text(m::jsonb)), l
          FROM unnest(${text((i) => rows[i]!.uid)}, ${sql.array(
            rows.map((x) => x.ordinal),
            'int4',
          )}, ${text((i) => JSON.stringify(rows[i]!.item))}, ${text((i) => cols[i]!.patientId)},
            ${text((i) => cols[i]!.patientName)}, ${text((i) => cols[i]!.accessionNumber)},
            ${text((i) => cols[i]!.studyDescription)}, ${text((i) => cols[i]!.studyDate)},
            ${text((i) => JSON.stringify(cols[i]!.modalities))}, ${sql.array(
              rows.map((x) => x.linked),
              'bool',
            )}) AS t(u, o, a, pid, pn, acc, descr, dt, m, l)`);
      }
      await tx.query(sql.unsafe`
        UPDATE qido_study_fills f
        SET filled_epoch = f.epoch, source_id = v.id, source_version = v.version, filled_at = now()
        FROM unnest(${sql.array(keptIds, 'text')}, ${sql.array(
          kept.map((r) => r.id),
          'text',
        )}, ${sql.array(
          kept.map((r) => r.version_id),
          'int4',
        )}) AS v(uid, id, version)
        WHERE f.study_instance_uid = v.uid`);
    });
  }

  /** Orthanc's study-level answers for these UIDs (every stored attribute), grouped by StudyInstanceUID. */
  async #fetch(uids: readonly string[]): Promise<Map<string, DicomJson[]>> {
    const out = new Map<string, DicomJson[]>();
    const wanted = new Set(uids);
    for (let i = 0; i < uids.length; i += this.#o.maxUids) {
      const chunk = uids.slice(i, i + this.#o.maxUids);
      const qs = orthancQueryString({
        match: [],
        includeFields: [...STORED_TAGS],
        offset: 0,
        fuzzy: false,
        studyUids: chunk,
      });
      const res = await this.#o.proxy.get(`${this.#o.dicomWebRoot}/studies?${qs}`, { accept: DICOM_JSON });
      if (res.status !== 200) throw await upstreamError(res.status, res.body);
      const json: unknown = JSON.parse(await readText(res.body, MAX_ANSWER_BYTES));
      if (!Array.isArray(json)) throw new DicomWebError(502, 'The image archive gave an unexpected answer');
      for (const item of json as DicomJson[]) {
        const uid = String(item['0020000D']?.Value?.[0] ?? '');
        if (!wanted.has(uid)) continue;
        out.set(uid, [...(out.get(uid) ?? []), item]);
      }
    }
    return out;
  }

  /**
   * Marks a study's stored answers stale in the database (every replica refetches), or every study's when no UID is
   * known. Call after the change committed (or was undone in Orthanc).
   */
  async invalidate(studyUid?: string): Promise<void> {
    const bump =
      studyUid === undefined
        ? sql.unsafe`UPDATE qido_study_fills SET epoch = epoch + 1`
        : sql.unsafe`
      INSERT INTO qido_study_fills (study_instance_uid, epoch) VALUES (${studyUid}, 1)
      ON CONFLICT (study_instance_uid) DO UPDATE SET epoch = qido_study_fills.epoch + 1`;
    const origin = this.#o.origin;
    if (origin === undefined) {
      await this.#o.db.query(bump);
      return;
    }
    await this.#o.db.transaction(async (tx) => {
      await tx.query(sql.unsafe`SELECT set_config('ehr.study_change_origin', ${origin}, true)`);
      await tx.query(bump);
    });
  }

  /** {@link invalidate} in the background (for in-process change signals); failures go to `onError`. */
  invalidateSoon(studyUid: string | undefined, onError: (err: unknown) => void): void {
    // Also when this replica does not answer from the index: another one may.
    const p: Promise<void> = this.invalidate(studyUid)
      .catch(onError)
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  /** Waits for background invalidations (app shutdown, before the pool closes). */
  async settled(): Promise<void> {
    await Promise.all([...this.#pending]);
  }
}
