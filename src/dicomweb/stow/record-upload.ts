import type { DicomInstance } from '../../imaging/dicom-instance.ts';
import { lockStudies, type RecordedStudy, type StudyToRecord } from '../../imaging/ehr-link.ts';
import { buildUploadLogRows, type LoggedInstance } from '../../imaging/upload-log.ts';
import type { OrthancStoredInstance } from '../../orthanc/client.ts';
import { OrthancUnavailableError } from '../../orthanc/errors.ts';
import { FailureReason, failed, type InstanceOutcome, InstanceRejection } from './outcome.ts';
import type { HoldInput, StowDeps, StowOptions } from './store-types.ts';
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/**
 * The EHR side of a STOW-RS request after its instances went to Orthanc: one transaction records the linked studies
 * (orders, ImagingStudies), the held ones (reconciliation queue), the upload log and the audit event; when it fails,
 * what this request newly stored is deleted from Orthanc again, so nothing is left half-written.
 *
 * To keep Orthanc's last stores and the EHR writes from adding up, the transaction starts while the last stores
 * (at most the pipeline's concurrency) are still in flight, on the assumption that they succeed: it writes the linked
 * studies, then waits for the stores (at most {@link EARLY_WAIT_MS}, `earlyRecordWaitMs`) and commits only when every store it counted on
 * succeeded. Otherwise it rolls back and the upload is recorded from the actual outcomes, as it would have been
 * without the head start.
 */

/** Per-part state of the pipeline. */
export interface StowItem {
  outcome: InstanceOutcome;
  inst?: DicomInstance;
  bytes: number;
  link?: { patientId: string; orderId: string; accession: string };
  hold?: { reason: HoldInput['reason']; detail: string };
  orthanc?: OrthancStoredInstance;
}

/**
 * How long the early transaction may wait for the last stores (holding a pool connection) before it rolls back and
 * the upload is recorded once they all settled.
 */
export const EARLY_WAIT_MS = 2000;

/** The early transaction's assumption did not hold (a store failed, or the stores took too long): roll it back. */
export class StoresDiffer extends EhrError {
  override readonly code: ErrorCode = 'EHR_STOW_STORES_DIFFER';
  override name = 'StoresDiffer';
}

interface LinkedStudy {
  study: StudyToRecord;
  items: StowItem[];
}

interface Plan {
  linked: Map<string, LinkedStudy>;
  held: Map<string, StowItem[]>;
}

/**
 * Linked and held studies of the items that are stored (`assumeStored`: linked ones stored or still being stored;
 * then undefined when a study has no stored instance yet to give Orthanc's study id).
 */
function planOf(items: readonly StowItem[], assumeStored: boolean): Plan | undefined {
  const linkedItems = new Map<string, StowItem[]>();
  const held = new Map<string, StowItem[]>();
  for (const i of items) {
    if (i.outcome.kind !== 'stored' || !i.inst || !(i.orthanc || assumeStored)) continue;
    const uid = i.inst.studyInstanceUid;
    if (i.link) linkedItems.set(uid, [...(linkedItems.get(uid) ?? []), i]);
    else if (!assumeStored) held.set(uid, [...(held.get(uid) ?? []), i]);
  }
  const linked = new Map<string, LinkedStudy>();
  for (const [uid, list] of linkedItems) {
    const first = list[0]!;
    const orthancStudyId = list.find((i) => i.orthanc)?.orthanc?.ParentStudy;
    if (!orthancStudyId) return undefined;
    linked.set(uid, {
      study: {
        studyInstanceUid: uid,
        orthancStudyId,
        patientId: first.link!.patientId,
        orderId: first.link!.orderId,
        instances: list.map((i) => i.inst!),
      },
      items: list,
    });
  }
  return { linked, held };
}

/** Same studies, same order and patient, same Orthanc study, same instances. */
function sameLinked(a: Plan['linked'], b: Plan['linked']): boolean {
  if (a.size !== b.size) return false;
  for (const [uid, x] of a) {
    const y = b.get(uid);
    if (!y || x.study.orthancStudyId !== y.study.orthancStudyId || x.study.orderId !== y.study.orderId) return false;
    if (x.study.patientId !== y.study.patientId || x.items.length !== y.items.length) return false;
    if (x.items.some((item, k) => item !== y.items[k])) return false;
  }
  return true;
}

/** Whether `p` settled within `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Records what was stored in one EHR transaction, started before `settled` (every store of the request) resolves when
 * the stores so far allow it; on failure, undoes the stores.
 */
export async function recordUpload(
  items: StowItem[],
  settled: Promise<unknown>,
  deps: StowDeps,
  opts: StowOptions,
  startedAt: Date,
): Promise<RecordedStudy[]> {
  const logRows = () =>
    buildUploadLogRows(items.map(logged), {
      requestId: opts.requestId,
      source: opts.source,
      uploadedBy: opts.access.agent.who,
      clientId: opts.access.agent.clientId,
      startedAt,
      finishedAt: new Date(),
    });
  /** The transaction: `linked` is written first; `settle` then gives the actual plan (held studies included). */
  const transact = (linked: Plan['linked'], lockUids: string[], settle: () => Promise<Plan>) =>
    deps.transaction([...new Set([...linked.values()].map((s) => s.study.patientId))], async (store, tx) => {
      await lockStudies(tx, lockUids);
      const studies = [...linked.values()].map((s) => s.study);
      const recorded = await deps.recordStudies(store, studies);
      await deps.closeQueued?.(
        tx,
        studies.map((s, k) => ({ orthancStudyId: s.orthancStudyId, imagingStudyId: recorded[k]?.imagingStudyId })),
      );
      const { held } = await settle();
      for (const [uid, list] of held) await deps.hold!(tx, holdInput(uid, list));
      await deps.insertLogs(tx, logRows());
      if (studies.length) await opts.audit?.(tx, studies);
      return recorded;
    });

  const early = planOf(items, true);
  if (early?.linked.size) {
    const lockUids = items.filter((i) => i.outcome.kind === 'stored' && i.inst).map((i) => i.inst!.studyInstanceUid);
    try {
      return await transact(early.linked, lockUids, async () => {
        const waitMs = opts.earlyRecordWaitMs ?? EARLY_WAIT_MS;
        if (!(await settledWithin(settled, waitMs))) throw new StoresDiffer('stores still running');
        const actual = planOf(items, false);
        if (!actual || !sameLinked(early.linked, actual.linked)) throw new StoresDiffer('a store failed');
        return actual;
      });
    } catch (err) {
      // Rolled back: recorded below from the actual outcomes (a real failure comes back there, and undoes).
      if (!(err instanceof StoresDiffer)) opts.log.warn({ err }, 'recording the upload early failed; trying again');
    }
  }

  await settled;
  const actual = planOf(items, false) ?? { linked: new Map(), held: new Map() };
  try {
    return await transact(actual.linked, [...actual.linked.keys(), ...actual.held.keys()], async () => actual);
  } catch (err) {
    opts.log.error({ err }, 'recording the upload in the EHR failed; undoing what was stored');
    await undoStored(items, deps, opts);
    await deps
      .transaction([], (_s, tx) => deps.insertLogs(tx, logRows()))
      .catch((e: unknown) => {
        opts.log.error({ err: e }, 'writing the upload log failed');
      });
    return [];
  }
}

function holdInput(uid: string, list: readonly StowItem[]): HoldInput {
  const first = list[0]!;
  return {
    studyInstanceUid: uid,
    orthancStudyId: first.orthanc!.ParentStudy,
    patientId: first.inst!.patientId,
    accessionNumber: first.inst!.accessionNumber,
    reason: first.hold!.reason,
    detail: first.hold!.detail,
    modalities: [...new Set(list.map((i) => i.inst!.modality).filter((m): m is string => !!m))],
    numberOfInstances: list.length,
    studyDate: first.inst!.studyDate,
    studyDescription: first.inst!.studyDescription,
  };
}

/** Deletes the instances this request newly stored and turns every stored outcome into a 0x0110 failure. */
export async function undoStored(items: StowItem[], deps: StowDeps, opts: StowOptions): Promise<void> {
  // Once Orthanc does not answer, the other deletes are not tried (each would wait for its own time-out): what stays
  // in Orthanc is found and accounted for by the change feed (linked, or queued with its reason).
  let orthancDown = false;
  let left = 0;
  for (const i of items) {
    if (i.outcome.kind !== 'stored') continue;
    if (i.orthanc && i.orthanc.Status !== 'AlreadyStored' && orthancDown) left++;
    else if (i.orthanc && i.orthanc.Status !== 'AlreadyStored') {
      await deps.orthanc.deleteInstance(i.orthanc.ID).catch((err: unknown) => {
        opts.log.error({ err, orthancId: i.orthanc?.ID }, 'could not undo a stored instance');
        if (err instanceof OrthancUnavailableError) orthancDown = true;
        left++;
      });
    }
    i.outcome = failed(
      i.outcome,
      new InstanceRejection(
        FailureReason.ProcessingFailure,
        'the EHR could not record it; not kept',
        'EHR update failed',
      ),
    );
  }
  if (left > 0) {
    opts.log.warn({ left }, 'instances left in Orthanc after a failed upload: the change feed will account for them');
  }
}

function logged(i: StowItem): LoggedInstance {
  const o = i.outcome;
  return {
    studyInstanceUid: o.studyInstanceUid,
    sopInstanceUid: o.sopInstanceUid,
    file: o.file,
    patientId: i.link?.patientId,
    orderId: i.link?.orderId,
    orthancStudyId: i.orthanc?.ParentStudy,
    bytes: i.bytes,
    stored: o.kind === 'stored',
    isNew: o.kind === 'stored' && !o.alreadyStored,
    failure: o.kind === 'failed' ? { reason: o.reason, comment: o.comment } : undefined,
  };
}
