import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { lockStudies } from '../imaging/ehr-link.ts';
import type { OrthancClient } from '../orthanc/client.ts';
import { countStudyInstances, getStudy, studyModalities } from '../orthanc/changes.ts';
import { decideStudy, type StudyDecision } from './classify.ts';
import { advanceCursor, claimCursor } from './cursor.ts';
import type { ChangeFeedAudit, StudyLinker, StudyToLink } from './ports.ts';
import { closeLinkedByUpload, enqueueUnmatched, openItemFor, refreshOpenItem, relinkInProgress } from './queue.ts';

/** Who closes a queue item whose study the feed linked. */
const FEED_WHO = 'system/change-feed';

export interface IndexDeps {
  db: DatabasePool;
  orthanc: OrthancClient;
  linker: StudyLinker;
  audit: ChangeFeedAudit;
  /** Called after a commit that changed which patient a study belongs to (e.g. to drop the DICOMweb link cache). */
  onStudyChanged?: ((studyInstanceUid: string) => void) | undefined;
  /** Called after a commit that handled a study whose instances changed (e.g. to drop the DICOMweb series cache). */
  onStudyContentChanged?: ((studyInstanceUid: string) => void) | undefined;
}

/** Reads a study from Orthanc as {@link StudyToLink}, or `undefined` when Orthanc no longer has it. */
export async function describeStudy(
  orthanc: OrthancClient,
  orthancStudyId: string,
  source: StudyToLink['source'],
): Promise<StudyToLink | undefined> {
  const study = await getStudy(orthanc, orthancStudyId);
  if (!study) return undefined;
  const [instances, modalities] = await Promise.all([
    countStudyInstances(orthanc, orthancStudyId),
    studyModalities(orthanc, orthancStudyId),
  ]);
  if (instances === undefined) return undefined;
  const tag = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());
  const uid = tag(study.MainDicomTags['StudyInstanceUID']);
  if (!uid) return undefined;
  return {
    studyInstanceUid: uid,
    orthancStudyId,
    patientId: tag(study.PatientMainDicomTags['PatientID']),
    accessionNumber: tag(study.MainDicomTags['AccessionNumber']),
    patientName: tag(study.PatientMainDicomTags['PatientName']),
    studyDate: tag(study.MainDicomTags['StudyDate']),
    studyDescription: tag(study.MainDicomTags['StudyDescription']),
    modalities,
    numberOfSeries: study.Series.length,
    numberOfInstances: instances,
    source,
  };
}

/** Records that the feed handled an Orthanc study (insert, or bump `times_indexed`). */
export async function recordFeedStudy(
  tx: CommonQueryMethods,
  study: StudyToLink,
  outcome: 'linked' | 'unmatched',
  imagingStudyId: string | undefined,
  seq: number,
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO change_feed_studies (orthanc_study_id, study_instance_uid, instances, outcome, imaging_study_id, last_seq)
    VALUES (${study.orthancStudyId}, ${study.studyInstanceUid}, ${study.numberOfInstances}, ${outcome},
            ${imagingStudyId ?? null}, ${seq})
    ON CONFLICT (orthanc_study_id) DO UPDATE SET instances = EXCLUDED.instances, outcome = EXCLUDED.outcome,
      imaging_study_id = EXCLUDED.imaging_study_id, last_seq = EXCLUDED.last_seq,
      times_indexed = change_feed_studies.times_indexed + 1, last_indexed_at = now()`);
}

export async function forgetFeedStudy(tx: CommonQueryMethods, orthancStudyId: string): Promise<void> {
  await tx.query(sql.unsafe`DELETE FROM change_feed_studies WHERE orthanc_study_id = ${orthancStudyId}`);
}

async function feedInstances(tx: CommonQueryMethods, orthancStudyId: string): Promise<number | undefined> {
  const row = (await tx.maybeOne(sql.unsafe`
    SELECT instances FROM change_feed_studies WHERE orthanc_study_id = ${orthancStudyId}`)) as {
    instances: number;
  } | null;
  return row === null ? undefined : row.instances;
}

/**
 * Handles one StableStudy change: in a single transaction, claims the cursor at `expected`, decides (see
 * {@link decideStudy}), links or queues the study, audits, and advances the cursor to `seq`. Nothing is written if any
 * step fails, so the change is retried; nothing is written twice, because a second look finds it up to date.
 */
export async function indexStudyChange(
  deps: IndexDeps,
  expected: number,
  seq: number,
  orthancStudyId: string,
): Promise<StudyDecision> {
  return indexStudy(deps, orthancStudyId, { expected, seq });
}

/**
 * Indexes a study found by a sweep rather than by a change (sweep.ts): the same decisions, without moving the cursor.
 * Only the leader sweeps, between pages of changes, so it never runs beside the consumer.
 */
export async function indexSweptStudy(deps: IndexDeps, orthancStudyId: string): Promise<StudyDecision> {
  return indexStudy(deps, orthancStudyId, undefined);
}

async function indexStudy(
  deps: IndexDeps,
  orthancStudyId: string,
  cursor: { expected: number; seq: number } | undefined,
): Promise<StudyDecision> {
  const seq = cursor?.seq ?? 0;
  const study = await describeStudy(deps.orthanc, orthancStudyId, 'dimse');
  let changed: string | undefined;
  const decision = await deps.db.transaction(async (tx) => {
    if (cursor) await claimCursor(tx, cursor.expected);
    if (!study) {
      if (cursor) await advanceCursor(tx, seq);
      return 'gone' as const;
    }
    // Serialized with uploads of the same study (STOW-RS takes the same lock), so that the two never both link it.
    await lockStudies(tx, [study.studyInstanceUid]);
    const open = await openItemFor(tx, orthancStudyId);
    const fromFeed = await feedInstances(tx, orthancStudyId);
    const fromEhr = await deps.linker.indexedInstances(tx, orthancStudyId, study.studyInstanceUid);
    const known = [fromFeed, fromEhr].filter((n): n is number => n !== undefined);
    const d = decideStudy({
      exists: true,
      relinkInProgress: await relinkInProgress(tx, study.studyInstanceUid),
      openItem: open?.status === 'pending' || open?.status === 'rejected' ? open.status : undefined,
      indexedInstances: known.length > 0 ? Math.max(...known) : undefined,
      orthancInstances: study.numberOfInstances,
    });
    if (d === 'held' && open?.status === 'pending') {
      // Matched again: the study may match now (its order arrived, or an earlier look was wrong). A rejected item
      // stays as the user left it.
      const outcome = await deps.linker.link(tx, study);
      if (outcome.linked) {
        await recordFeedStudy(tx, study, 'linked', outcome.imagingStudyId, seq);
        const closed = await closeLinkedByUpload(tx, {
          orthancStudyId,
          imagingStudyId: outcome.imagingStudyId,
          by: FEED_WHO,
        });
        await deps.audit.record(tx, {
          action: 'study-linked',
          agent: { kind: 'system' },
          outcome: 'success',
          studyInstanceUid: study.studyInstanceUid,
          orthancStudyId,
          patientId: outcome.patientId,
          orderId: outcome.orderId,
          imagingStudyId: outcome.imagingStudyId,
          queueItemId: closed[0]?.id,
          detail: 'queued study matches now',
        });
        changed = study.studyInstanceUid;
      } else {
        await refreshOpenItem(tx, orthancStudyId, study.numberOfInstances, study.modalities, outcome);
      }
    } else if (d === 'held') {
      await refreshOpenItem(tx, orthancStudyId, study.numberOfInstances, study.modalities);
    } else if (d === 'link') {
      const outcome = await deps.linker.link(tx, study);
      if (outcome.linked) {
        await recordFeedStudy(tx, study, 'linked', outcome.imagingStudyId, seq);
        await deps.audit.record(tx, {
          action: 'study-linked',
          agent: { kind: 'system' },
          outcome: 'success',
          studyInstanceUid: study.studyInstanceUid,
          orthancStudyId,
          patientId: outcome.patientId,
          orderId: outcome.orderId,
          imagingStudyId: outcome.imagingStudyId,
        });
        changed = study.studyInstanceUid;
      } else {
        const { item } = await enqueueUnmatched(tx, { ...study, reason: outcome.reason, detail: outcome.detail });
        await recordFeedStudy(tx, study, 'unmatched', undefined, seq);
        await deps.audit.record(tx, {
          action: 'study-queued',
          agent: { kind: 'system' },
          outcome: 'success',
          studyInstanceUid: study.studyInstanceUid,
          orthancStudyId,
          queueItemId: item.id,
          detail: `${outcome.reason}: ${outcome.detail}`,
        });
      }
    }
    if (cursor) await advanceCursor(tx, seq);
    return d;
  });
  if (changed) deps.onStudyChanged?.(changed);
  // A StableStudy change means new instances arrived, whatever the decision: Orthanc's answers for it changed.
  else if (study) deps.onStudyContentChanged?.(study.studyInstanceUid);
  return decision;
}
