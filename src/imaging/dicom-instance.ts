import dcmjs, { type DicomDataset } from 'dcmjs';
import { datasetProblems, transferSyntaxProblem } from './dicom-values.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * Reading the attributes the EHR needs from a DICOM Part 10 instance (PS3.10 §7) with dcmjs, and zeroing its
 * preamble. Pure: no I/O.
 */

/** The bytes are not a readable DICOM Part 10 instance. */
export class DicomReadError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOM_READ';
  override name = 'DicomReadError';
}

/**
 * The UIDs of an instance as far as they could be read, each only when it is a valid UID: a refused instance is
 * still named by them in a STOW-RS FailedSOPSequence (PS3.18 §10.5.3, Referenced SOP Class/Instance UID).
 */
export interface InstanceIdentity {
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
}

/** A required attribute is missing or invalid. */
export class DicomAttributeError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOM_ATTRIBUTE';
  override name = 'DicomAttributeError';
  readonly attributes: readonly string[];
  readonly identity: InstanceIdentity;
  constructor(message: string, attributes: readonly string[], identity: InstanceIdentity = {}) {
    super(message);
    this.attributes = attributes;
    this.identity = identity;
  }
}

/** The instance's transfer syntax is empty or not one the facade accepts (see dicom-values.ts). */
export class UnsupportedTransferSyntaxError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOM_TRANSFER_SYNTAX';
  override name = 'UnsupportedTransferSyntaxError';
  readonly identity: InstanceIdentity;
  constructor(message: string, identity: InstanceIdentity = {}) {
    super(message);
    this.identity = identity;
  }
}

/** What the EHR keeps of an instance: bridge keys, hierarchy and a few descriptive attributes. */
export interface DicomInstance {
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  /** PatientID (0010,0020): must be a patient's MRN. */
  readonly patientId: string;
  /** AccessionNumber (0008,0050): must be an order's accession; undefined when empty. */
  readonly accessionNumber?: string;
  readonly transferSyntaxUid?: string;
  readonly modality?: string;
  readonly seriesNumber?: number;
  readonly instanceNumber?: number;
  readonly seriesDescription?: string;
  readonly studyDescription?: string;
  readonly bodyPartExamined?: string;
  /** StudyDate (0008,0020) YYYYMMDD, StudyTime (0008,0030) HHMMSS.frac, TimezoneOffsetFromUTC (0008,0201) ±HHMM. */
  readonly studyDate?: string;
  readonly studyTime?: string;
  readonly timezoneOffset?: string;
  readonly numberOfFrames?: number;
  /** PatientName (0010,0010) alphabetic group, PatientBirthDate (0010,0030), PatientSex (0010,0040): compared with the EHR. */
  readonly patientName?: string;
  readonly patientBirthDate?: string;
  readonly patientSex?: string;
}

const TAG = {
  TransferSyntaxUID: '00020010',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  TimezoneOffsetFromUTC: '00080201',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  BodyPartExamined: '00180015',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfFrames: '00280008',
} as const;

/** The attributes whose absence makes an instance unusable for the EHR (issue: required attributes). */
export const REQUIRED_ATTRIBUTES = [
  'SOPClassUID',
  'SOPInstanceUID',
  'StudyInstanceUID',
  'SeriesInstanceUID',
  'PatientID',
] as const;

/** PS3.5 §9.1: digits and dots, no leading zeros in components, at most 64 characters. */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/.test(uid);
}

function text(ds: DicomDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  const s = (typeof v === 'object' ? String((v as { Alphabetic?: string }).Alphabetic ?? '') : String(v))
    .replace(/\0+$/, '')
    .trim();
  return s === '' ? undefined : s;
}

function int(ds: DicomDataset, tag: string): number | undefined {
  const s = text(ds, tag);
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isInteger(n) ? n : undefined;
}

/** Whether the bytes look like a Part 10 file: a 128-byte preamble followed by "DICM". */
export function hasPart10Header(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d
  );
}

/** An instance as one buffer, or as the list of chunks it arrived in (a multipart part, not concatenated). */
export type InstanceBytes = Uint8Array | readonly Uint8Array[];

const PIXEL_DATA = '7FE00010';
/**
 * Bytes given to dcmjs first. The attributes before Pixel Data of an image take a few KB (more with large private
 * blocks or icons); when Pixel Data does not start within this prefix, the whole instance is parsed instead.
 */
export const HEADER_PREFIX_BYTES = 64 * 1024;

const chunksOf = (bytes: InstanceBytes): readonly Uint8Array[] => (bytes instanceof Uint8Array ? [bytes] : bytes);

/** The first `n` bytes (or all) as an ArrayBuffer of their own (dcmjs reads whole ArrayBuffers); no copy when one chunk is exactly its ArrayBuffer. */
function arrayBufferOf(bytes: InstanceBytes, n = Number.POSITIVE_INFINITY): ArrayBuffer {
  const chunks = chunksOf(bytes);
  const total = chunks.reduce((t, c) => t + c.byteLength, 0);
  const len = Math.min(n, total);
  const first = chunks[0];
  if (
    first &&
    first.byteLength >= len &&
    first.byteOffset === 0 &&
    len === first.buffer.byteLength &&
    first.buffer instanceof ArrayBuffer
  ) {
    return first.buffer;
  }
  const out = new Uint8Array(len);
  let at = 0;
  for (const c of chunks) {
    if (at >= len) break;
    const part = c.subarray(0, len - at);
    out.set(part, at);
    at += part.byteLength;
  }
  return out.buffer;
}

/**
 * dcmjs reads up to Pixel Data (7FE0,0010) and stops there (`untilTag`). It is first given only the first
 * {@link HEADER_PREFIX_BYTES}: when the Pixel Data tag was reached inside them, every attribute before it was read from
 * real bytes, so the result is the one the whole instance gives (an element running past the end of dcmjs's buffer
 * ends or fails the read, so Pixel Data is never reached after one). Otherwise (no Pixel Data, a longer header, or a failure on the truncated copy), the whole
 * instance is parsed.
 */
function parseHeader(bytes: InstanceBytes, size: number): { meta: DicomDataset; ds: DicomDataset } {
  const read = (ab: ArrayBuffer) => {
    const dict = dcmjs.data.DicomMessage.readFile(ab, { untilTag: PIXEL_DATA, noCopy: true });
    return { meta: dict.meta, ds: dict.dict };
  };
  if (size > HEADER_PREFIX_BYTES) {
    // The value cut by the end of the prefix is expected: no "value declares more bytes" warning for it.
    const validationLog = dcmjs.log.getLogger('validation.dcmjs');
    const level = validationLog.getLevel();
    validationLog.setLevel('silent', false);
    try {
      const head = read(arrayBufferOf(bytes, HEADER_PREFIX_BYTES));
      if (PIXEL_DATA in head.ds) return head;
    } catch {
      // parsed again below, whole
    } finally {
      validationLog.setLevel(level, false);
    }
  }
  return read(arrayBufferOf(bytes));
}

/** The valid UIDs of a data set; SOP Class/Instance UID fall back to the meta header's Media Storage ones. */
function identityOf(meta: DicomDataset, ds: DicomDataset): InstanceIdentity {
  const uid = (...tags: string[]) => {
    for (const t of tags) {
      const v = text(ds, t) ?? text(meta, t);
      if (v !== undefined) return isValidUid(v) ? v : undefined;
    }
    return undefined;
  };
  const found = {
    sopClassUid: uid(TAG.SOPClassUID, '00020002'),
    sopInstanceUid: uid(TAG.SOPInstanceUID, '00020003'),
    studyInstanceUid: uid(TAG.StudyInstanceUID),
    seriesInstanceUid: uid(TAG.SeriesInstanceUID),
  };
  return Object.fromEntries(Object.entries(found).filter(([, v]) => v !== undefined));
}

/** The UIDs of an instance as far as they can be read; never throws (for refusals before the instance is read). */
export function readIdentity(bytes: InstanceBytes): InstanceIdentity {
  try {
    const start = bytes instanceof Uint8Array ? bytes : new Uint8Array(arrayBufferOf(bytes, 132));
    if (!hasPart10Header(start)) return {};
    const size = chunksOf(bytes).reduce((t, c) => t + c.byteLength, 0);
    const { meta, ds } = parseHeader(bytes, size);
    return identityOf(meta, ds);
  } catch {
    return {};
  }
}

export interface ReadOptions {
  /**
   * Accept an instance without PatientID (its `patientId` is then `''`), for callers that hold unmatched instances
   * for review instead of refusing them.
   */
  readonly patientIdOptional?: boolean;
}

/**
 * Reads an instance's attributes (stopping before Pixel Data) and checks the required ones.
 * @throws DicomReadError when the bytes are not a readable Part 10 instance
 * @throws UnsupportedTransferSyntaxError when the transfer syntax is empty or not accepted
 * @throws DicomAttributeError when a required attribute is missing, a UID is malformed, or a value breaks the rules
 *   of dicom-values.ts (several values in an identifying attribute, NUL, invalid characters, overlong)
 */
export function readDicomInstance(bytes: InstanceBytes, opts: ReadOptions = {}): DicomInstance {
  const size = chunksOf(bytes).reduce((t, c) => t + c.byteLength, 0);
  const start = bytes instanceof Uint8Array ? bytes : new Uint8Array(arrayBufferOf(bytes, 132));
  if (!hasPart10Header(start)) throw new DicomReadError('not a DICOM Part 10 file (no "DICM" after the preamble)');
  let meta: DicomDataset;
  let ds: DicomDataset;
  try {
    ({ meta, ds } = parseHeader(bytes, size));
  } catch (err) {
    throw new DicomReadError(`unreadable DICOM data set: ${(err as Error).message}`.slice(0, 200));
  }
  const identity = identityOf(meta, ds);
  const tsProblem = transferSyntaxProblem(text(meta, TAG.TransferSyntaxUID));
  if (tsProblem) throw new UnsupportedTransferSyntaxError(tsProblem, identity);
  const problems = datasetProblems(ds);
  if (problems.length > 0) throw new DicomAttributeError(problems.join('; '), problems, identity);
  const values = {
    SOPClassUID: text(ds, TAG.SOPClassUID),
    SOPInstanceUID: text(ds, TAG.SOPInstanceUID),
    StudyInstanceUID: text(ds, TAG.StudyInstanceUID),
    SeriesInstanceUID: text(ds, TAG.SeriesInstanceUID),
    PatientID: text(ds, TAG.PatientID),
  };
  const missing = REQUIRED_ATTRIBUTES.filter(
    (k) => values[k] === undefined && !(k === 'PatientID' && opts.patientIdOptional),
  );
  if (missing.length > 0) {
    throw new DicomAttributeError(`missing required attribute ${missing.join(', ')}`, missing, identity);
  }
  const badUids = (['SOPClassUID', 'SOPInstanceUID', 'StudyInstanceUID', 'SeriesInstanceUID'] as const).filter(
    (k) => !isValidUid(values[k]!),
  );
  if (badUids.length > 0) {
    throw new DicomAttributeError(`malformed UID in ${badUids.join(', ')}`, badUids, identity);
  }
  // PS3.10 §7.1: the meta header's Media Storage SOP Class/Instance UIDs are those of the data set.
  for (const [metaTag, key, name] of [
    ['00020002', 'SOPClassUID', 'MediaStorageSOPClassUID (0002,0002)'],
    ['00020003', 'SOPInstanceUID', 'MediaStorageSOPInstanceUID (0002,0003)'],
  ] as const) {
    const m = text(meta, metaTag);
    if (m !== undefined && m !== values[key]) {
      throw new DicomAttributeError(`${name} differs from ${key} of the data set`, [name], identity);
    }
  }

  const optional = {
    accessionNumber: text(ds, TAG.AccessionNumber),
    transferSyntaxUid: text(meta, TAG.TransferSyntaxUID),
    modality: text(ds, TAG.Modality),
    seriesNumber: int(ds, TAG.SeriesNumber),
    instanceNumber: int(ds, TAG.InstanceNumber),
    seriesDescription: text(ds, TAG.SeriesDescription),
    studyDescription: text(ds, TAG.StudyDescription),
    bodyPartExamined: text(ds, TAG.BodyPartExamined),
    studyDate: text(ds, TAG.StudyDate),
    studyTime: text(ds, TAG.StudyTime),
    timezoneOffset: text(ds, TAG.TimezoneOffsetFromUTC),
    numberOfFrames: int(ds, TAG.NumberOfFrames),
    patientName: text(ds, TAG.PatientName),
    patientBirthDate: text(ds, TAG.PatientBirthDate),
    patientSex: text(ds, TAG.PatientSex),
  };
  return {
    sopClassUid: values.SOPClassUID!,
    sopInstanceUid: values.SOPInstanceUID!,
    studyInstanceUid: values.StudyInstanceUID!,
    seriesInstanceUid: values.SeriesInstanceUID!,
    patientId: values.PatientID ?? '',
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
}

/**
 * Zeroes the 128-byte preamble in place (PS3.10 §7.1 allows any content there; a zeroed one keeps no DICOM/TIFF or
 * DICOM/executable polyglot), also when the instance is a list of chunks. Returns the same bytes.
 */
export function zeroPreamble<T extends InstanceBytes>(bytes: T): T {
  let left = 128;
  for (const c of chunksOf(bytes)) {
    if (left <= 0) break;
    const n = Math.min(left, c.byteLength);
    c.fill(0, 0, n);
    left -= n;
  }
  return bytes;
}
