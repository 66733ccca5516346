import { type CommonQueryMethods, sql } from 'slonik';
import { allStudyIds, getStudy } from '../orthanc/changes.ts';
import { forgetFeedStudy, type IndexDeps } from './index-study.ts';
import { getUnmatched, transition } from './queue.ts';

/**
 * Deletions in Orthanc. Orthanc 1.10.1 does not log `Deleted` in `/changes`, so the leader periodically compares the
 * Orthanc study ids the EHR relies on (linked ImagingStudies and open queue items) with the studies Orthanc has, and
 * confirms each missing one with `GET /studies/{id}` before acting: the ImagingStudy becomes `entered-in-error`
 * (http://hl7.org/fhir/R4/imagingstudy.html, status), its order is unlinked, a queue item becomes `deleted`, and each
 * is audited as a system action. Items being re-linked are skipped (their Orthanc copies are in transit).
 */

async function openItemsByStudy(db: CommonQueryMethods): Promise<Map<string, string>> {
  const rows = (await db.any(sql.unsafe`
    SELECT id::text AS id, orthanc_study_id FROM dicom_unmatched WHERE status IN ('pending', 'rejected')`)) as readonly {
    id: string;
    orthanc_study_id: string;
  }[];
  return new Map(rows.map((r) => [r.orthanc_study_id, r.id]));
}

export interface SweepResult {
  unlinked: number;
  queueItemsClosed: number;
}

/** One deletion sweep (the caller holds leadership). */
export async function sweepDeletions(deps: IndexDeps): Promise<SweepResult> {
  // The EHR side first: anything linked after this read is newer than the Orthanc listing below and is not judged.
  const linked = await deps.db.transaction((tx) => deps.linker.linkedOrthancStudyIds(tx));
  const queued = await openItemsByStudy(deps.db);
  if (linked.length === 0 && queued.size === 0) return { unlinked: 0, queueItemsClosed: 0 };
  const inOrthanc = await allStudyIds(deps.orthanc);
  const result: SweepResult = { unlinked: 0, queueItemsClosed: 0 };

  for (const id of linked) {
    if (inOrthanc.has(id) || (await getStudy(deps.orthanc, id))) continue;
    const changed = await deps.db.transaction(async (tx) => {
      const unlinked = await deps.linker.markDeleted(tx, id);
      for (const s of unlinked) {
        await deps.audit.record(tx, {
          action: 'study-deleted',
          agent: { kind: 'system' },
          outcome: 'success',
          studyInstanceUid: s.studyInstanceUid,
          orthancStudyId: id,
          imagingStudyId: s.imagingStudyId,
          patientId: s.patientId,
          orderId: s.orderId,
          detail: 'study deleted in Orthanc: ImagingStudy entered-in-error, order unlinked',
        });
      }
      await forgetFeedStudy(tx, id);
      return unlinked;
    });
    result.unlinked += changed.length;
    for (const s of changed) deps.onStudyChanged?.(s.studyInstanceUid);
  }

  for (const [orthancStudyId, itemId] of queued) {
    if (inOrthanc.has(orthancStudyId) || (await getStudy(deps.orthanc, orthancStudyId))) continue;
    const closed = await deps.db.transaction(async (tx) => {
      const item = await getUnmatched(tx, itemId, true);
      if (item.status !== 'pending' && item.status !== 'rejected') return undefined;
      await transition(tx, item, 'study-deleted');
      await forgetFeedStudy(tx, orthancStudyId);
      await deps.audit.record(tx, {
        action: 'study-deleted',
        agent: { kind: 'system' },
        outcome: 'success',
        studyInstanceUid: item.studyInstanceUid,
        orthancStudyId,
        queueItemId: item.id,
        detail: 'unmatched study deleted in Orthanc: queue item closed',
      });
      return item.studyInstanceUid;
    });
    if (closed) deps.onStudyContentChanged?.(closed);
    result.queueItemsClosed += 1;
  }
  return result;
}
