import { sql } from 'slonik';
import { describeStudy, type IndexDeps, recordFeedStudy } from './index-study.ts';
import { LinkTargetError } from './ports.ts';
import { getUnmatched, transition, type UnmatchedItem } from './queue.ts';
import { QueueTransitionError } from './queue-state.ts';
import { firstPhase, RelinkError, relinkInOrthanc } from './relink.ts';

/** Who resolves a queue item (from the request's access context, or the CLI's operator). */
export interface Actor {
  who: string;
  roles: readonly string[];
}

/** The item is being re-linked by someone else right now, or to another target. */
export class RelinkBusyError extends Error {
  override name = 'RelinkBusyError';
}

/** Per-item advisory lock class (second key is hashtext(item id)), so two re-links of one item never overlap. */
const RELINK_LOCK_CLASS = 746_372;

const userAgent = (actor: Actor) => ({ kind: 'user' as const, who: actor.who, roles: actor.roles });

/**
 * Links a queued study to the patient and order the user picked: records the target (status `relinking`), corrects
 * PatientID and AccessionNumber in Orthanc (see relink.ts), then links the corrected study with the same code as STOW
 * and marks the item `linked`, in one transaction with its audit event. A failure leaves the item `relinking` with
 * the error; calling again with the same target resumes.
 */
export async function linkUnmatched(
  deps: IndexDeps,
  id: string,
  choice: { patient: string; order: string },
  actor: Actor,
): Promise<UnmatchedItem> {
  return deps.db.connect(async (lockConn) => {
    const got = await lockConn.oneFirst(
      sql.unsafe`SELECT pg_try_advisory_lock(${RELINK_LOCK_CLASS}, hashtext(${id})) AS got`,
    );
    if (got !== true) throw new RelinkBusyError(`unmatched study ${id} is being linked right now`);
    try {
      return await linkLocked(deps, id, choice, actor);
    } finally {
      await lockConn.query(sql.unsafe`SELECT pg_advisory_unlock(${RELINK_LOCK_CLASS}, hashtext(${id}))`);
    }
  });
}

async function linkLocked(
  deps: IndexDeps,
  id: string,
  choice: { patient: string; order: string },
  actor: Actor,
): Promise<UnmatchedItem> {
  const started = await deps.db.transaction(async (tx) => {
    const item = await getUnmatched(tx, id, true);
    if (item.status !== 'pending' && item.status !== 'rejected' && item.status !== 'relinking') {
      throw new QueueTransitionError(item.status, 'start-link');
    }
    const target = await deps.linker.resolveTarget(tx, choice.patient, choice.order);
    if (item.status === 'relinking' && item.target && item.target.order !== target.orderId) {
      throw new RelinkBusyError(`unmatched study ${id} is being linked to ${item.target.order}: finish that first`);
    }
    const phase = item.relinkPhase ?? firstPhase(item.patientId, target.mrn);
    return transition(tx, item, 'start-link', {
      relinkPhase: phase,
      target: {
        patient: target.patientId,
        order: target.orderId,
        mrn: target.mrn,
        accessionNumber: target.accessionNumber,
      },
      resolvedBy: actor.who,
      lastError: null,
    });
  });
  const target = started.target!;
  try {
    const corrected = await relinkInOrthanc(
      deps.orthanc,
      {
        itemId: started.id,
        studyInstanceUid: started.studyInstanceUid,
        orthancStudyId: started.orthancStudyId,
        phase: started.relinkPhase ?? 'to-final',
        viaTemporary: firstPhase(started.patientId, target.mrn) === 'to-temporary',
        mrn: target.mrn,
        accessionNumber: target.accessionNumber,
      },
      async (phase) => {
        await deps.db.query(sql.unsafe`UPDATE dicom_unmatched SET relink_phase = ${phase}, updated_at = now()
          WHERE id = ${started.id}`);
      },
    );
    const study = await describeStudy(deps.orthanc, corrected, started.source);
    if (!study) throw new RelinkError(`corrected study ${corrected} vanished from Orthanc`);
    const linked = await deps.db.transaction(async (tx) => {
      const item = await getUnmatched(tx, id, true);
      const outcome = await deps.linker.link(tx, study, { reviewed: true });
      if (!outcome.linked) throw new LinkTargetError(`corrected study still does not match: ${outcome.detail}`);
      const done = await transition(tx, item, 'finish-link', {
        linkedOrthancStudyId: corrected,
        linkedImagingStudyId: outcome.imagingStudyId,
        relinkPhase: null,
        lastError: null,
      });
      await recordFeedStudy(tx, study, 'linked', outcome.imagingStudyId, 0);
      await deps.audit.record(tx, {
        action: 'study-relinked',
        agent: userAgent(actor),
        outcome: 'success',
        studyInstanceUid: item.studyInstanceUid,
        orthancStudyId: corrected,
        queueItemId: item.id,
        patientId: outcome.patientId,
        orderId: outcome.orderId,
        imagingStudyId: outcome.imagingStudyId,
        detail: `PatientID ${item.patientId ?? ''} → ${target.mrn}, AccessionNumber ${item.accessionNumber ?? ''} → ${target.accessionNumber}`,
      });
      return done;
    });
    deps.onStudyChanged?.(linked.studyInstanceUid);
    return linked;
  } catch (err) {
    const message = (err as Error).message;
    await deps.db.transaction(async (tx) => {
      await tx.query(sql.unsafe`UPDATE dicom_unmatched SET last_error = ${message}, updated_at = now()
        WHERE id = ${started.id}`);
      await deps.audit.record(tx, {
        action: 'relink-failed',
        agent: userAgent(actor),
        outcome: 'failure',
        studyInstanceUid: started.studyInstanceUid,
        orthancStudyId: started.orthancStudyId,
        queueItemId: started.id,
        orderId: target.order,
        patientId: target.patient,
        detail: message,
      });
    });
    throw err;
  }
}

/** Rejects a queued study: it stays in Orthanc and in the queue, marked `rejected` with the reason. */
export async function rejectUnmatched(
  deps: IndexDeps,
  id: string,
  reason: string,
  actor: Actor,
): Promise<UnmatchedItem> {
  const text = reason.trim();
  if (text === '') throw new LinkTargetError('a reason is required to reject a study');
  return deps.db.transaction(async (tx) => {
    const item = await getUnmatched(tx, id, true);
    const rejected = await transition(tx, item, 'reject', { rejectReason: text.slice(0, 1000), resolvedBy: actor.who });
    await deps.audit.record(tx, {
      action: 'study-rejected',
      agent: userAgent(actor),
      outcome: 'success',
      studyInstanceUid: item.studyInstanceUid,
      orthancStudyId: item.orthancStudyId,
      queueItemId: item.id,
      detail: text,
    });
    return rejected;
  });
}
