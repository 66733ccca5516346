import { sql } from 'slonik';
import { describeStudy, type IndexDeps, recordFeedStudy } from './index-study.ts';
import { LinkTargetError } from './ports.ts';
import { getUnmatched, transition, type UnmatchedItem } from './queue.ts';
import { nextStatus, QueueTransitionError } from './queue-state.ts';
import { firstPhase, RelinkError, relinkInOrthanc, restoreInOrthanc } from './relink.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Who resolves a queue item (from the request's access context, or the CLI's operator). */
export interface Actor {
  who: string;
  roles: readonly string[];
}

/** The item is being re-linked by someone else right now, or to another target. */
export class RelinkBusyError extends EhrError {
  override readonly code: ErrorCode = 'EHR_RELINK_BUSY';
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
  return withItemLock(deps, id, () => linkLocked(deps, id, choice, actor));
}

/** Runs `fn` holding the item's advisory lock, or fails with {@link RelinkBusyError} when someone else holds it. */
async function withItemLock<T>(deps: IndexDeps, id: string, fn: () => Promise<T>): Promise<T> {
  return deps.db.connect(async (lockConn) => {
    const got = await lockConn.oneFirst(
      sql.unsafe`SELECT pg_try_advisory_lock(${RELINK_LOCK_CLASS}, hashtext(${id})) AS got`,
    );
    if (got !== true) throw new RelinkBusyError(`unmatched study ${id} is being linked right now`);
    try {
      return await fn();
    } finally {
      await lockConn.query(sql.unsafe`SELECT pg_advisory_unlock(${RELINK_LOCK_CLASS}, hashtext(${id}))`);
    }
  });
}

/**
 * Rolls back a re-link that failed half-way (status `relinking`): restores the study in Orthanc under the PatientID
 * and AccessionNumber as queued (relink.ts `restoreInOrthanc`) and puts the item back to `pending`, with its audit
 * event. Restartable: a failure leaves the item `relinking`, and rolling back again finishes the job.
 */
export async function rollbackUnmatched(deps: IndexDeps, id: string, actor: Actor): Promise<UnmatchedItem> {
  return withItemLock(deps, id, () => rollbackLocked(deps, id, actor));
}

async function rollbackLocked(deps: IndexDeps, id: string, actor: Actor): Promise<UnmatchedItem> {
  const item = await getUnmatched(deps.db, id);
  nextStatus(item.status, 'roll-back'); // refuses anything but `relinking` before touching Orthanc
  const restored = await restoreInOrthanc(deps.orthanc, {
    itemId: item.id,
    studyInstanceUid: item.studyInstanceUid,
    original: { patientId: item.patientId ?? '', accessionNumber: item.accessionNumber ?? '' },
    holders: item.target ? [item.target.mrn] : [],
  });
  const back = await deps.db.transaction(async (tx) => {
    const locked = await getUnmatched(tx, id, true);
    const out = await transition(tx, locked, 'roll-back', { relinkPhase: null, clearTarget: true, resolvedBy: null });
    if (restored && restored !== out.orthancStudyId) {
      await tx.query(sql.unsafe`UPDATE dicom_unmatched SET orthanc_study_id = ${restored} WHERE id = ${id}`);
    }
    await deps.audit.record(tx, {
      action: 'relink-rolled-back',
      agent: userAgent(actor),
      outcome: 'success',
      studyInstanceUid: item.studyInstanceUid,
      orthancStudyId: restored ?? item.orthancStudyId,
      queueItemId: item.id,
      orderId: item.target?.order,
      patientId: item.target?.patient,
      detail: `PatientID back to ${item.patientId ?? ''}, AccessionNumber back to ${item.accessionNumber ?? ''}`,
    });
    return getUnmatched(tx, id);
  });
  deps.onStudyChanged?.(back.studyInstanceUid);
  return back;
}

async function linkLocked(
  deps: IndexDeps,
  id: string,
  choice: { patient: string; order: string },
  actor: Actor,
): Promise<UnmatchedItem> {
  const begun = await deps.db.transaction(async (tx) => {
    const item = await getUnmatched(tx, id, true);
    if (item.status !== 'pending' && item.status !== 'rejected' && item.status !== 'relinking') {
      throw new QueueTransitionError(item.status, 'start-link');
    }
    const target = await deps.linker.resolveTarget(tx, choice.patient, choice.order, item.studyInstanceUid);
    if (item.status === 'relinking' && item.target && item.target.order !== target.orderId) {
      // An earlier re-link to another order failed half-way: undo it first (below), then link to this one.
      return { retarget: true as const };
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
  if ('retarget' in begun) {
    await rollbackLocked(deps, id, actor);
    return linkLocked(deps, id, choice, actor);
  }
  const started = begun;
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
  const current = await getUnmatched(deps.db, id);
  if (current.status === 'relinking') {
    // A re-link that failed half-way: restore the study as queued, then reject it.
    return withItemLock(deps, id, async () => {
      await rollbackLocked(deps, id, actor);
      return rejectNow(deps, id, text, actor);
    });
  }
  return rejectNow(deps, id, text, actor);
}

async function rejectNow(deps: IndexDeps, id: string, text: string, actor: Actor): Promise<UnmatchedItem> {
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
