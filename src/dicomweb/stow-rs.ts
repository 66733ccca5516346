import type { CommonQueryMethods } from 'slonik';
import type { Access } from '../auth/access.ts';
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
} from '../imaging/dicom-instance.ts';
import { type FhirStore, lookupForMatch, type RecordedStudy, type StudyToRecord } from '../imaging/ehr-link.ts';
import {
  decideMatch,
  type MatchLookup,
  type MismatchCode,
  mayStoreImaging,
  type StudyLink,
} from '../imaging/matching.ts';
import type { UploadLogRow, UploadSource } from '../imaging/upload-log.ts';
import type { OrthancStoredInstance } from '../orthanc/client.ts';
import { OrthancHttpError } from '../orthanc/errors.ts';
import { MultipartError, type MultipartPart } from './multipart.ts';
import { recordUpload, type StowItem, undoStored } from './stow-record.ts';
import {
  FailureReason,
  failed,
  type InstanceOutcome,
  type InstanceRef,
  InstanceRejection,
  WarningReason,
} from './stow-outcome.ts';

/**
 * The STOW-RS pipeline (DICOM PS3.18 §10.5) shared by `POST /dicom-web/studies[/{uid}]` and the upload API: for each
 * part, in order, as it streams in: size limit → dcmjs parse → transfer syntax → values (one value per identifying
 * attribute, no NUL, valid characters, bounded length; src/imaging/dicom-values.ts) → required attributes → URL
 * study → EHR match (patient, order, where the study is already linked, demographics) → access policy → zero the
 * preamble → store in Orthanc (a bounded number at once, each instance sent as the chunks it
 * arrived in). Then one EHR transaction records what was stored (orders, ImagingStudies, upload log, hold queue),
 * started while the last stores are still in flight (see stow-record.ts). Every failure stays with its instance.
 */

export interface HoldInput {
  studyInstanceUid: string;
  orthancStudyId: string;
  patientId: string;
  accessionNumber?: string | undefined;
  reason: 'unknown-mrn' | 'unknown-accession' | 'patient-order-mismatch' | 'missing-identifiers';
  detail: string;
  modalities: string[];
  numberOfInstances: number;
  studyDate?: string | undefined;
  studyDescription?: string | undefined;
}

export interface StowDeps {
  orthanc: {
    /** Stores one instance, given as one buffer or as the chunks it arrived in. */
    storeInstance(body: InstanceBytes): Promise<OrthancStoredInstance>;
    deleteInstance(id: string): Promise<void>;
  };
  /** Lookups with the caller's access. */
  lookup: FhirStore;
  /** Where a Study Instance UID is already linked, regardless of the caller's access (refusals only). */
  studyLink?: ((studyInstanceUid: string) => Promise<StudyLink | undefined>) | undefined;
  /**
   * Runs the EHR transaction. `store` writes on the transaction with the linking access for `patientIds`;
   * `tx` is for plain SQL (upload log, hold queue).
   */
  transaction<T>(patientIds: string[], fn: (store: FhirStore, tx: CommonQueryMethods) => Promise<T>): Promise<T>;
  recordStudies(store: FhirStore, studies: StudyToRecord[]): Promise<RecordedStudy[]>;
  insertLogs(tx: CommonQueryMethods, rows: UploadLogRow[]): Promise<void>;
  /** The reconciliation queue (hold mode); absent when the queue is not available. */
  hold?: ((tx: CommonQueryMethods, input: HoldInput) => Promise<void>) | undefined;
  /** Closes the pending queue items of studies this upload linked (e.g. a retry after a failed upload). */
  closeQueued?: ((tx: CommonQueryMethods, linked: readonly RecordedStudyIn[]) => Promise<void>) | undefined;
  /**
   * Called once the upload is recorded (or undone) with every study that got instances in Orthanc, linked or held,
   * so that caches of Orthanc's answers drop them; absent in tests that need no cache.
   */
  studiesStored?: ((studyUids: string[]) => void) | undefined;
}

export interface StowOptions {
  access: Access;
  requestId: string;
  source: UploadSource;
  targetStudy?: string | undefined;
  maxInstanceBytes: number;
  unmatched: 'reject' | 'hold';
  /**
   * An instance whose MRN and accession match but whose name, birth date or sex contradicts the EHR patient:
   * `hold` (stored, not linked, queued for review; the default) or `refuse` (0xA900).
   */
  demographicsMismatch?: 'hold' | 'refuse';
  concurrency: number;
  /** Which part media types are DICOM (STOW: application/dicom, application/octet-stream or none). */
  acceptPart: (mediaType: string | undefined) => boolean;
  log: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /**
   * How long the EHR transaction started before the last stores settled may wait for them (stow-record.ts); default
   * `EARLY_WAIT_MS` (2 s).
   */
  earlyRecordWaitMs?: number;
  /** Audit: called inside the EHR transaction with the linked studies, so both commit together. */
  audit?: (tx: CommonQueryMethods, linked: readonly StudyToRecord[]) => Promise<void>;
}

export interface StowResult {
  outcomes: InstanceOutcome[];
  recorded: RecordedStudy[];
  bytes: number;
  /** The multipart framing broke after these outcomes (the rest of the body was not read). */
  framingError?: string;
}

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

/** A study the upload linked: its Orthanc study and ImagingStudy. */
export interface RecordedStudyIn {
  orthancStudyId: string;
  imagingStudyId: string | undefined;
}

/** Tells {@link StowDeps.studiesStored} every study that got (or briefly had) instances in Orthanc. */
function announceStored(items: StowItem[], deps: StowDeps): void {
  const touched = new Set(items.filter((i) => i.orthanc && i.inst).map((i) => i.inst!.studyInstanceUid));
  if (touched.size) deps.studiesStored?.([...touched]);
}
