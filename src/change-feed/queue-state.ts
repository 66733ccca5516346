/**
 * States of a reconciliation-queue item (a study that matched no patient/order) and the only allowed moves.
 *
 * pending ──start-link──▶ relinking ──finish-link──▶ linked
 *    │                       └──start-link (resume after a failure)
 *    ├──linked-by-upload──▶ linked   (the same study was linked since: a retried upload, or it matches now)
 *    ├──reject──▶ rejected ──start-link──▶ relinking   (a rejection can be corrected by linking)
 *  relinking ──roll-back──▶ pending   (Orthanc's copy restored to the tags as received; then link or reject again)
 *    └──study-deleted──▶ deleted ◀──study-deleted── rejected
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';

export const QUEUE_STATUSES = ['pending', 'relinking', 'linked', 'rejected', 'deleted'] as const;
export type QueueStatus = (typeof QUEUE_STATUSES)[number];

export type QueueAction = 'start-link' | 'finish-link' | 'reject' | 'study-deleted' | 'linked-by-upload' | 'roll-back';

/** Why a study is in the queue. */
export const UNMATCHED_REASONS = [
  'unknown-mrn',
  'unknown-accession',
  'patient-order-mismatch',
  'order-not-actionable',
  'order-linked-elsewhere',
  'missing-identifiers',
] as const;
export type UnmatchedReason = (typeof UNMATCHED_REASONS)[number];

export const UNMATCHED_SOURCES = ['stow', 'dimse'] as const;
export type UnmatchedSource = (typeof UNMATCHED_SOURCES)[number];

/** An action that the item's current status does not allow (e.g. rejecting a linked study). */
export class QueueTransitionError extends EhrError {
  override readonly code: ErrorCode = 'EHR_QUEUE_TRANSITION';
  override name = 'QueueTransitionError';
  readonly from: QueueStatus;
  readonly action: QueueAction;
  constructor(from: QueueStatus, action: QueueAction) {
    super(`cannot ${action.replaceAll('-', ' ')} an item that is ${from}`);
    this.from = from;
    this.action = action;
  }
}

const MOVES: Record<QueueStatus, Partial<Record<QueueAction, QueueStatus>>> = {
  pending: { 'start-link': 'relinking', reject: 'rejected', 'study-deleted': 'deleted', 'linked-by-upload': 'linked' },
  // Starting again resumes an interrupted re-link (every Orthanc step is idempotent); rolling back restores the study
  // as it was queued, so that no failure leaves an item stuck (only linked, rejected and deleted are final).
  relinking: { 'start-link': 'relinking', 'finish-link': 'linked', 'roll-back': 'pending' },
  rejected: { 'start-link': 'relinking', 'study-deleted': 'deleted' },
  linked: {},
  deleted: {},
};

/** The status after `action`, or {@link QueueTransitionError}. */
export function nextStatus(from: QueueStatus, action: QueueAction): QueueStatus {
  const to = MOVES[from][action];
  if (to === undefined) throw new QueueTransitionError(from, action);
  return to;
}

/** Items that still hold their Orthanc study (at most one per Orthanc study). */
export function isOpen(status: QueueStatus): boolean {
  return status === 'pending' || status === 'relinking' || status === 'rejected';
}
