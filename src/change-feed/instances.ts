import type { DicomInstance } from '../imaging/dicom-instance.ts';
import { isValidUid } from '../imaging/dicom-instance.ts';
import type { MismatchCode } from '../imaging/matching.ts';
import type { UnmatchedReason } from './queue-state.ts';

/**
 * Adapters between what Orthanc says about a stored study and the STOW code's types: an instance from Orthanc's
 * `/studies/{id}/instances-tags?short` (tags keyed `gggg,eeee`) as a {@link DicomInstance}, and STOW's mismatch codes
 * as queue reasons. Pure.
 */

type ShortTags = Record<string, unknown>;

function text(tags: ShortTags, key: string): string | undefined {
  const v = tags[key];
  if (typeof v !== 'string') return undefined;
  const s = v.replace(/\0+$/, '').trim();
  return s === '' ? undefined : s;
}

function int(tags: ShortTags, key: string): number | undefined {
  const s = text(tags, key);
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isInteger(n) ? n : undefined;
}

const REQUIRED_NAMES: Record<string, string> = {
  sopClassUid: 'SOPClassUID',
  sopInstanceUid: 'SOPInstanceUID',
  studyInstanceUid: 'StudyInstanceUID',
  seriesInstanceUid: 'SeriesInstanceUID',
  patientId: 'PatientID',
};

/**
 * Why an instance's tags do not make a {@link DicomInstance} (the missing or malformed attributes, by keyword), or
 * `undefined` when they do. Used for the queue's `missing-identifiers` detail, which must name what is really missing.
 */
export function missingAttributes(tags: ShortTags): string | undefined {
  const r = requiredOf(tags);
  const missing = Object.entries(r)
    .filter(([, v]) => v === undefined)
    .map(([k]) => REQUIRED_NAMES[k]);
  const malformed = (['sopClassUid', 'sopInstanceUid', 'studyInstanceUid', 'seriesInstanceUid'] as const)
    .filter((k) => r[k] !== undefined && !isValidUid(r[k]))
    .map((k) => `malformed ${REQUIRED_NAMES[k]}`);
  const all = [...missing.map((m) => `no ${m}`), ...malformed];
  return all.length ? all.join(', ') : undefined;
}

function requiredOf(tags: ShortTags) {
  return {
    sopClassUid: text(tags, '0008,0016'),
    sopInstanceUid: text(tags, '0008,0018'),
    studyInstanceUid: text(tags, '0020,000d'),
    seriesInstanceUid: text(tags, '0020,000e'),
    patientId: text(tags, '0010,0020'),
  };
}

/** The instance, or `undefined` when a required attribute is missing or a UID is malformed (PS3.5 §9.1). */
export function instanceFromOrthancTags(tags: ShortTags): DicomInstance | undefined {
  const required = {
    sopClassUid: text(tags, '0008,0016'),
    sopInstanceUid: text(tags, '0008,0018'),
    studyInstanceUid: text(tags, '0020,000d'),
    seriesInstanceUid: text(tags, '0020,000e'),
    patientId: text(tags, '0010,0020'),
  };
  if (Object.values(required).some((v) => v === undefined)) return undefined;
  const uids = [required.sopClassUid, required.sopInstanceUid, required.studyInstanceUid, required.seriesInstanceUid];
  if (!uids.every((u) => isValidUid(u!))) return undefined;
  const optional = {
    accessionNumber: text(tags, '0008,0050'),
    modality: text(tags, '0008,0060'),
    seriesNumber: int(tags, '0020,0011'),
    instanceNumber: int(tags, '0020,0013'),
    seriesDescription: text(tags, '0008,103e'),
    studyDescription: text(tags, '0008,1030'),
    bodyPartExamined: text(tags, '0018,0015'),
    studyDate: text(tags, '0008,0020'),
    studyTime: text(tags, '0008,0030'),
    timezoneOffset: text(tags, '0008,0201'),
    numberOfFrames: int(tags, '0028,0008'),
    patientName: text(tags, '0010,0010'),
    patientBirthDate: text(tags, '0010,0030'),
    patientSex: text(tags, '0010,0040'),
  };
  return {
    sopClassUid: required.sopClassUid!,
    sopInstanceUid: required.sopInstanceUid!,
    studyInstanceUid: required.studyInstanceUid!,
    seriesInstanceUid: required.seriesInstanceUid!,
    patientId: required.patientId!,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
}

const REASONS: Record<MismatchCode, UnmatchedReason> = {
  'unknown-patient': 'unknown-mrn',
  'no-accession': 'missing-identifiers',
  'unknown-order': 'unknown-accession',
  'order-other-patient': 'patient-order-mismatch',
  'order-not-actionable': 'order-not-actionable',
  'order-other-study': 'order-linked-elsewhere',
  'study-other-patient': 'patient-order-mismatch',
  'study-other-order': 'order-linked-elsewhere',
  // The queue has no reason of its own for this; the detail says which demographics differ.
  'demographics-mismatch': 'patient-order-mismatch',
};

/** The queue reason for one of STOW's mismatch codes (for the feed and for STOW's `hold` mode). */
export function reasonFromMismatch(code: MismatchCode): UnmatchedReason {
  return REASONS[code];
}
