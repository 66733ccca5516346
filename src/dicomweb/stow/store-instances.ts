import {
  DicomAttributeError,
  type DicomInstance,
  type InstanceBytes,
  type InstanceIdentity,
  isValidUid,
  readDicomInstance,
  readIdentity,
  UnsupportedTransferSyntaxError,
  zeroPreamble,
} from '../../imaging/dicom-instance.ts';
import { lookupForMatch, type RecordedStudy } from '../../imaging/ehr-link.ts';
import { decideMatch, type MatchLookup, type MismatchCode, mayStoreImaging } from '../../imaging/matching.ts';
import { OrthancHttpError } from '../../orthanc/errors.ts';
import { MultipartError, type MultipartPart } from './multipart-related.ts';
import { recordUpload, type StowItem, undoStored } from './record-upload.ts';
import type { HoldInput, StowDeps, StowOptions, StowResult } from './store-types.ts';
import {
  FailureReason,
  failed,
  type InstanceOutcome,
  type InstanceRef,
  InstanceRejection,
  WarningReason,
} from './outcome.ts';

/**
 * The STOW-RS pipeline (DICOM PS3.18 §10.5) shared by `POST /dicom-web/studies[/{uid}]` and the upload API: for each
 * part, in order, as it streams in: size limit → dcmjs parse → transfer syntax → values (one value per identifying
 * attribute, no NUL, valid characters, bounded length; src/imaging/dicom-values.ts) → required attributes → URL
 * study → EHR match (patient, order, where the study is already linked, demographics) → access policy → zero the
 * preamble → store in Orthanc (a bounded number at once, each instance sent as the chunks it
 * arrived in). Then one EHR transaction records what was stored (orders, ImagingStudies, upload log, hold queue),
 * started while the last stores are still in flight (see stow/record-upload.ts). Every failure stays with its instance.
 */

const HOLDABLE: Partial<Record<MismatchCode, HoldInput['reason']>> = {
  'unknown-patient': 'unknown-mrn',
  'no-accession': 'missing-identifiers',
  'unknown-order': 'unknown-accession',
  'order-other-patient': 'patient-order-mismatch',
};
export const HOLD_QUEUE_NAME = 'dicom_unmatched (reconciliation queue)';

export async function storeInstances(
  parts: AsyncIterable<MultipartPart>,
  deps: StowDeps,
  opts: StowOptions,
): Promise<StowResult> {
  const startedAt = new Date();
  const items: StowItem[] = [];
  const lookups = new Map<string, Promise<MatchLookup>>();
  const studyOwner = new Map<string, string>(); // study UID → "patient|order" of its first accepted instance
  const inflight = new Set<Promise<void>>();
  let bytes = 0;
  let framingError: string | undefined;

  const check = async (part: MultipartPart): Promise<StowItem> => {
    const ref: InstanceRef = { part: part.index, ...(part.filename ? { file: part.filename } : {}) };
    if (part.overLimit || !part.chunks) {
      throw Object.assign(
        new InstanceRejection(
          FailureReason.OutOfResources,
          'instance larger than the per-instance limit',
          `instance of ${part.size} bytes exceeds the limit of ${opts.maxInstanceBytes} bytes`,
        ),
        { ref },
      );
    }
    if (!opts.acceptPart(part.mediaType)) {
      throw Object.assign(
        new InstanceRejection(
          FailureReason.CannotUnderstand,
          'unsupported part media type',
          `part type ${part.mediaType}`,
        ),
        { ref: { ...ref, ...readIdentity(part.chunks) } },
      );
    }
    let inst: DicomInstance;
    try {
      // In hold mode an instance without PatientID is stored and queued for review, like one with an unknown MRN.
      inst = readDicomInstance(part.chunks, {
        patientIdOptional: opts.unmatched === 'hold' && deps.hold !== undefined,
      });
    } catch (err) {
      // A refused instance is still named by the UIDs that could be read (FailedSOPSequence, PS3.18 §10.5.3).
      const identity: InstanceIdentity = (err as { identity?: InstanceIdentity }).identity ?? {};
      const attr = err instanceof DicomAttributeError;
      const ts = err instanceof UnsupportedTransferSyntaxError;
      throw Object.assign(
        new InstanceRejection(
          ts
            ? FailureReason.TransferSyntaxNotSupported
            : attr
              ? FailureReason.DataSetMismatch
              : FailureReason.CannotUnderstand,
          attr || ts ? (err as Error).message : 'not a readable DICOM Part 10 instance',
          (err as Error).message,
        ),
        { ref: { ...ref, ...identity } },
      );
    }
    const iref: InstanceRef = {
      ...ref,
      sopClassUid: inst.sopClassUid,
      sopInstanceUid: inst.sopInstanceUid,
      studyInstanceUid: inst.studyInstanceUid,
      seriesInstanceUid: inst.seriesInstanceUid,
    };
    const reject = (r: InstanceRejection) => Object.assign(r, { ref: iref, inst });
    // PS3.18 §10.5.1: with a study in the URL, every instance must belong to it; a URL study that is not a valid
    // UID matches no instance, so each one fails here with its UIDs (409 when none is stored).
    if (opts.targetStudy !== undefined && inst.studyInstanceUid !== opts.targetStudy) {
      const target = JSON.stringify(opts.targetStudy.slice(0, 80));
      throw reject(
        new InstanceRejection(
          FailureReason.DataSetMismatch,
          'StudyInstanceUID is not the study of the request URL',
          `StudyInstanceUID ${inst.studyInstanceUid} differs from ${target} in the URL${isValidUid(opts.targetStudy) ? '' : ' (not a valid UID)'}`,
        ),
      );
    }
    const notAuthorized = () =>
      reject(new InstanceRejection(FailureReason.NotAuthorized, 'not authorized to store imaging for this patient'));
    if (!opts.access.allows('create', 'ImagingStudy')) throw notAuthorized();
    const stored = { kind: 'stored' as const, ...iref, alreadyStored: false } as InstanceOutcome;
    const hold = (reason: HoldInput['reason'], detail: string): StowItem => {
      if (studyOwner.has(inst.studyInstanceUid) && studyOwner.get(inst.studyInstanceUid) !== 'held') {
        throw reject(
          new InstanceRejection(FailureReason.DataSetMismatch, 'instances of one study must belong to one order'),
        );
      }
      studyOwner.set(inst.studyInstanceUid, 'held');
      return { outcome: stored, inst, bytes: part.size, hold: { reason, detail } };
    };
    if (inst.patientId === '') {
      // Read without PatientID only in hold mode: nothing to match, so held for review by a caller who may store
      // imaging for any patient. Refused when the study is already linked: the EHR must not show it another
      // patient's images under the same StudyInstanceUID.
      if (!mayStoreImaging(opts.access, undefined)) throw notAuthorized();
      const linked = await deps.studyLink?.(inst.studyInstanceUid);
      if (deps.hold && !linked) return hold('missing-identifiers', 'the instance has no PatientID to match a patient');
      throw reject(
        new InstanceRejection(
          FailureReason.DataSetMismatch,
          'missing required attribute PatientID',
          linked
            ? `the instance has no PatientID, and study ${inst.studyInstanceUid} is already linked to a patient`
            : 'missing required attribute PatientID',
        ),
      );
    }
    const key = `${inst.patientId}\u0000${inst.accessionNumber ?? ''}\u0000${inst.studyInstanceUid}`;
    let found = lookups.get(key);
    if (!found) {
      found = lookupForMatch(deps.lookup, inst, deps.studyLink);
      lookups.set(key, found);
    }
    const lookup = await found;
    const m = decideMatch(inst, lookup);
    if (m.matched) {
      if (!mayStoreImaging(opts.access, m.patient.id)) throw notAuthorized();
      const owner = `${m.patient.id}|${m.order.id}`;
      if ((studyOwner.get(inst.studyInstanceUid) ?? owner) !== owner) {
        throw reject(
          new InstanceRejection(
            FailureReason.DataSetMismatch,
            'instances of one study must belong to one order',
            `study ${inst.studyInstanceUid} already has instances for another patient or order in this request`,
          ),
        );
      }
      studyOwner.set(inst.studyInstanceUid, owner);
      return {
        outcome: stored,
        inst,
        bytes: part.size,
        link: { patientId: m.patient.id, orderId: m.order.id, accession: m.order.accession },
      };
    }
    if (!mayStoreImaging(opts.access, m.patient?.id)) throw notAuthorized();
    const holdReason = HOLDABLE[m.code];
    // Demographics that contradict a known patient: held for review (the caller may store for that patient) unless
    // configured to refuse; never linked. Not when the study is already linked: with the same PatientID and
    // StudyInstanceUID, Orthanc would put the instance into the linked study, where the patient's viewer shows it.
    const holdDemographics =
      m.code === 'demographics-mismatch' &&
      (opts.demographicsMismatch ?? 'hold') === 'hold' &&
      !lookup.study &&
      !lookup.studyLink;
    if (
      deps.hold &&
      (holdDemographics || (opts.unmatched === 'hold' && holdReason && mayStoreImaging(opts.access, undefined)))
    ) {
      return hold(holdReason ?? 'patient-order-mismatch', m.detail);
    }
    throw reject(new InstanceRejection(FailureReason.DataSetMismatch, m.comment, m.detail));
  };

  const store = async (item: StowItem, body: InstanceBytes): Promise<void> => {
    try {
      item.orthanc = await deps.orthanc.storeInstance(zeroPreamble(body));
      const o = item.outcome as Extract<InstanceOutcome, { kind: 'stored' }>;
      const alreadyStored = item.orthanc.Status === 'AlreadyStored';
      item.outcome = item.hold
        ? {
            ...o,
            alreadyStored,
            warning: {
              reason: WarningReason.HeldForReview,
              comment: 'stored, not linked: held for review',
              detail: `${item.hold.detail}; stored and queued in ${HOLD_QUEUE_NAME} for manual linking`,
            },
          }
        : { ...o, alreadyStored };
    } catch (err) {
      const detail =
        err instanceof OrthancHttpError
          ? `Orthanc refused the instance (${err.orthancStatus}${err.detail ? `: ${err.detail}` : ''})`
          : 'the archive is unavailable';
      if (!(err instanceof OrthancHttpError)) opts.log.error({ err }, 'storing an instance in Orthanc failed');
      item.outcome = failed(
        item.outcome,
        new InstanceRejection(FailureReason.ProcessingFailure, 'the archive did not store it', detail),
      );
    }
  };

  try {
    for await (const part of parts) {
      bytes += part.size;
      let item: StowItem;
      try {
        item = await check(part);
      } catch (err) {
        if (!(err instanceof InstanceRejection)) throw err;
        const e = err as InstanceRejection & { ref: InstanceRef; inst?: DicomInstance };
        items.push({ outcome: failed(e.ref, e), bytes: part.size, ...(e.inst ? { inst: e.inst } : {}) });
        continue;
      }
      items.push(item);
      while (inflight.size >= opts.concurrency) await Promise.race(inflight);
      const p: Promise<void> = store(item, part.chunks!).finally(() => inflight.delete(p));
      inflight.add(p);
    }
  } catch (err) {
    if (!(err instanceof MultipartError)) {
      await Promise.all(inflight);
      await undoStored(items, deps, opts).finally(() => announceStored(items, deps));
      throw err;
    }
    framingError = err.message;
  }
  let recorded: RecordedStudy[];
  try {
    recorded = await recordUpload(items, Promise.all(inflight), deps, opts, startedAt);
  } finally {
    announceStored(items, deps);
  }
  return {
    outcomes: items.map((i) => i.outcome),
    recorded,
    bytes,
    ...(framingError ? { framingError } : {}),
  };
}

/** Tells {@link StowDeps.studiesStored} every study that got (or briefly had) instances in Orthanc. */
function announceStored(items: StowItem[], deps: StowDeps): void {
  const touched = new Set(items.filter((i) => i.orthanc && i.inst).map((i) => i.inst!.studyInstanceUid));
  if (touched.size) deps.studiesStored?.([...touched]);
}
