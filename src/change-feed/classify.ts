/**
 * Pure decisions of the change-feed consumer: which Orthanc changes matter, how the cursor moves, and what to do with
 * a study that became stable. Orthanc's change log: https://orthanc.uclouvain.be/book/users/rest.html#changes
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** The fields of an Orthanc change that the consumer reads. */
export interface ChangeLike {
  ChangeType: string;
  ResourceType: string;
  ID: string;
  Seq: number;
}

export type ChangeAction =
  | { kind: 'index-study'; seq: number; orthancStudyId: string }
  | { kind: 'study-deleted'; seq: number; orthancStudyId: string }
  | { kind: 'skip'; seq: number };

/**
 * StableStudy (no new instance for `StableAge` seconds) is when a study is complete enough to index. Orthanc 1.10.1
 * does not write `Deleted` into `/changes` (deletions are only signalled to plugins), so deletions are found by the
 * deletion sweep; a `Deleted` study change is still honoured in case a later Orthanc logs it.
 */
export function classifyChange(change: ChangeLike): ChangeAction {
  if (change.ResourceType === 'Study' && change.ChangeType === 'StableStudy') {
    return { kind: 'index-study', seq: change.Seq, orthancStudyId: change.ID };
  }
  if (change.ResourceType === 'Study' && change.ChangeType === 'Deleted') {
    return { kind: 'study-deleted', seq: change.Seq, orthancStudyId: change.ID };
  }
  return { kind: 'skip', seq: change.Seq };
}

/** A page of `/changes` that contradicts the cursor. */
export class ChangeFeedOrderError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CHANGE_FEED_ORDER';
  override name = 'ChangeFeedOrderError';
}

export interface PagePlan {
  /** Actions in seq order; runs of skips are merged into the following action or a trailing skip. */
  actions: ChangeAction[];
  /** The cursor after the page, even when it holds no changes that matter. */
  last: number;
  /** Orthanc's log restarted below our cursor (a new Orthanc database): start again from 0. */
  reset: boolean;
}

/**
 * Plans one page of `/changes?since=cursor`. Every change must be after the cursor and in increasing order (Orthanc
 * guarantees it; anything else is refused rather than risking a gap). An empty page whose `Last` is below the cursor
 * means Orthanc's change log was recreated: the consumer restarts from 0 (safe, because indexing is idempotent).
 */
export function planPage(cursor: number, page: { Changes: ChangeLike[]; Last: number }): PagePlan {
  if (page.Changes.length === 0) {
    return { actions: [], last: cursor, reset: page.Last < cursor };
  }
  const actions: ChangeAction[] = [];
  let previous = cursor;
  for (const change of page.Changes) {
    if (!Number.isInteger(change.Seq) || change.Seq <= previous) {
      throw new ChangeFeedOrderError(`change seq ${change.Seq} is not after ${previous}`);
    }
    previous = change.Seq;
    const action = classifyChange(change);
    const tail = actions.at(-1);
    // Consecutive skips collapse into one cursor move.
    if (action.kind === 'skip' && tail?.kind === 'skip') actions[actions.length - 1] = action;
    else actions.push(action);
  }
  return { actions, last: previous, reset: false };
}

/** What the EHR already knows about a stable study, read inside the change's transaction. */
export interface StudyState {
  /** The study is still in Orthanc (it may have been deleted since the change was logged). */
  exists: boolean;
  /** A reconciliation item for the same StudyInstanceUID is being re-linked right now. */
  relinkInProgress: boolean;
  /** Status of the open (pending or rejected) queue item for this Orthanc study, if any. */
  openItem: 'pending' | 'rejected' | undefined;
  /** Instances the EHR has indexed for this Orthanc study (feed or STOW), if it has indexed it at all. */
  indexedInstances: number | undefined;
  /** Instances Orthanc holds now. */
  orthancInstances: number;
}

export type StudyDecision =
  /** Deleted before we got to it: nothing to index. */
  | 'gone'
  /** A copy made while its StudyInstanceUID is being re-linked (the temporary or the corrected one): the re-link
   * finishes it. A leftover temporary copy after an aborted re-link is linked normally, i.e. queued. */
  | 'transit'
  /** Already in the reconciliation queue: refresh its counts, never queue it twice. */
  | 'held'
  /** Already indexed with every instance Orthanc has: nothing new (e.g. a STOW upload, or a change seen twice). */
  | 'up-to-date'
  /** Match and link (or queue when nothing matches). */
  | 'link';

/** The decision table for a StableStudy change. */
export function decideStudy(s: StudyState): StudyDecision {
  if (!s.exists) return 'gone';
  if (s.relinkInProgress) return 'transit';
  if (s.openItem !== undefined) return 'held';
  if (s.indexedInstances !== undefined && s.indexedInstances >= s.orthancInstances) return 'up-to-date';
  return 'link';
}
