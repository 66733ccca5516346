import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import dcmjs from 'dcmjs';

/** Real DICOM files from Debian's python3-pydicom (installed by scripts/setup.sh). */
export const PYDICOM_DIR = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export function pydicomFile(name: string): Buffer {
  return readFileSync(`${PYDICOM_DIR}/${name}`);
}

/** PatientName, PatientBirthDate, PatientSex: compared by the facade with the EHR patient. */
const DEMOGRAPHICS = ['00100010', '00100030', '00100040'];

/**
 * Sets raw data set elements (DICOM JSON model) of an instance and, optionally, its TransferSyntaxUID (meta header);
 * `null` removes an element.
 */
export function withElements(
  bytes: Buffer,
  elements: Record<string, { vr: string; Value: unknown[] } | null>,
  transferSyntaxUid?: string,
): Buffer {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab);
  for (const [tag, el] of Object.entries(elements)) {
    if (el === null) delete dict.dict[tag];
    else dict.dict[tag] = el;
  }
  if (transferSyntaxUid !== undefined) dict.meta['00020010'] = { vr: 'UI', Value: [transferSyntaxUid] };
  return Buffer.from(dict.write({ allowInvalidVRLength: true }));
}

/** Replaces the first occurrence of an ASCII marker in the bytes with raw bytes of the same length. */
export function patchBytes(bytes: Buffer, marker: string, raw: number[]): Buffer {
  const at = bytes.indexOf(marker, 0, 'latin1');
  if (at < 0 || raw.length !== marker.length) throw new Error(`marker ${marker} not found or length differs`);
  const out = Buffer.from(bytes);
  out.set(raw, at);
  return out;
}

/** A fresh UID under the UUID-derived root 2.25 (PS3.5 §B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

const VR: Record<string, string> = {
  '00080016': 'UI',
  '00080018': 'UI',
  '0020000D': 'UI',
  '0020000E': 'UI',
  '00100020': 'LO',
  '00080050': 'SH',
  '00080060': 'CS',
  '00200011': 'IS',
  '00200013': 'IS',
  '0008103E': 'LO',
  '00081030': 'LO',
};

/** Tag keywords used by the tests, mapped to their hex tags. */
export const T = {
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  PatientID: '00100020',
  AccessionNumber: '00080050',
  Modality: '00080060',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  SeriesDescription: '0008103E',
} as const;

/**
 * Rewrites attributes of a real instance with dcmjs: a string sets the value, null removes the attribute.
 * The meta header's MediaStorageSOPInstanceUID follows SOPInstanceUID. The template's PatientName, PatientBirthDate
 * and PatientSex are removed: the facade compares them with the EHR patient and a missing value is no contradiction,
 * so the instance fits any test patient (tests of that comparison set them with {@link withElements}).
 */
export function rewrite(bytes: Buffer, changes: Partial<Record<keyof typeof T, string | number | null>>): Buffer {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab);
  for (const tag of DEMOGRAPHICS) delete dict.dict[tag];
  for (const [k, v] of Object.entries(changes)) {
    const tag = T[k as keyof typeof T];
    if (v === null) delete dict.dict[tag];
    else dict.dict[tag] = { vr: dict.dict[tag]?.vr ?? VR[tag] ?? 'LO', Value: [v] };
  }
  if (typeof changes.SOPInstanceUID === 'string') dict.meta['00020003'] = { vr: 'UI', Value: [changes.SOPInstanceUID] };
  return Buffer.from(dict.write());
}

export interface SeriesSpec {
  patientId: string;
  accession?: string;
  studyUid?: string;
  seriesUid?: string;
  count: number;
  template?: string;
  seriesNumber?: number;
  modality?: string;
}

/** A multi-instance series generated from a real pydicom file, with fresh SOP Instance UIDs. */
export function makeSeries(spec: SeriesSpec): {
  studyUid: string;
  seriesUid: string;
  sopUids: string[];
  files: Buffer[];
} {
  const template = pydicomFile(spec.template ?? 'CT_small.dcm');
  const studyUid = spec.studyUid ?? newUid();
  const seriesUid = spec.seriesUid ?? newUid();
  const sopUids: string[] = [];
  const files: Buffer[] = [];
  for (let i = 0; i < spec.count; i++) {
    const sop = newUid();
    sopUids.push(sop);
    files.push(
      rewrite(template, {
        PatientID: spec.patientId,
        AccessionNumber: spec.accession ?? null,
        StudyInstanceUID: studyUid,
        SeriesInstanceUID: seriesUid,
        SOPInstanceUID: sop,
        InstanceNumber: String(i + 1),
        SeriesNumber: String(spec.seriesNumber ?? 1),
        ...(spec.modality ? { Modality: spec.modality } : {}),
      }),
    );
  }
  return { studyUid, seriesUid, sopUids, files };
}
