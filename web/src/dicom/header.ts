/**
 * Reads and corrects DICOM Part 10 headers in the browser with dcmjs (PS3.10). Reading stops before the pixel data;
 * a correction rewrites the file and records what it changed in the Original Attributes Sequence (0400,0561) with
 * reason CORRECT (PS3.3 C.12.1.1.9), so the change stays visible in the stored instance.
 */
import dcmjs from 'dcmjs';

const { DicomMessage } = dcmjs.data;

/** Media Storage Directory Storage: a DICOMDIR (PS3.4 Annex F). */
export const DICOMDIR_SOP_CLASS = '1.2.840.10008.1.3.10';

export interface Header {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  patientName: string;
  patientId: string;
  birthDate: string;
  accessionNumber: string;
  studyDate: string;
  modality: string;
}

type Element = { vr: string; Value?: unknown[] };
type Dict = Record<string, Element>;

function str(dict: Dict, tag: string): string {
  const v = dict[tag]?.Value?.[0];
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return String((v as { Alphabetic?: string }).Alphabetic ?? '');
  return String(v).trim();
}

/** True when the bytes carry the Part 10 "DICM" prefix after the 128-byte preamble. */
export function isPart10(head: Uint8Array): boolean {
  return head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
}

export function readHeader(bytes: ArrayBuffer): Header {
  const msg = DicomMessage.readFile(bytes, { untilTag: '7FE00010', includeUntilTagValue: false, ignoreErrors: true });
  const dict = msg.dict as Dict;
  const meta = msg.meta as Dict;
  return {
    sopClassUid: str(dict, '00080016') || str(meta, '00020002'),
    sopInstanceUid: str(dict, '00080018') || str(meta, '00020003'),
    studyInstanceUid: str(dict, '0020000D'),
    seriesInstanceUid: str(dict, '0020000E'),
    patientName: str(dict, '00100010'),
    patientId: str(dict, '00100020'),
    birthDate: str(dict, '00100030'),
    accessionNumber: str(dict, '00080050'),
    studyDate: str(dict, '00080020'),
    modality: str(dict, '00080060'),
  };
}

/** The attributes the tag editor may correct from the order and its patient. */
export const EDITABLE = {
  patientId: { tag: '00100020', vr: 'LO', label: 'Patient ID' },
  accessionNumber: { tag: '00080050', vr: 'SH', label: 'Accession number' },
  patientName: { tag: '00100010', vr: 'PN', label: 'Patient name' },
  birthDate: { tag: '00100030', vr: 'DA', label: 'Birth date' },
} as const;
export type Editable = keyof typeof EDITABLE;

function dicomNow(): string {
  return new Date()
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, '');
}

/** Rewrites a Part 10 file with new values, recording the old ones in the Original Attributes Sequence. */
export function correct(bytes: ArrayBuffer, values: Partial<Record<Editable, string>>): ArrayBuffer {
  const msg = DicomMessage.readFile(bytes, { ignoreErrors: true });
  const dict = msg.dict as Dict;
  const previous: Dict = {};
  for (const [k, v] of Object.entries(values) as [Editable, string][]) {
    const { tag, vr } = EDITABLE[k];
    previous[tag] = dict[tag] ?? { vr, Value: [] };
    dict[tag] = { vr, Value: [vr === 'PN' ? { Alphabetic: v } : v] };
  }
  const original = (dict['04000561']?.Value ?? []) as Dict[];
  original.push({
    '04000550': { vr: 'SQ', Value: [previous] },
    '04000562': { vr: 'DT', Value: [dicomNow()] },
    '04000563': { vr: 'LO', Value: ['EHR web app tag editor'] },
    '04000564': { vr: 'LO', Value: ['EHR order'] },
    '04000565': { vr: 'CS', Value: ['CORRECT'] },
  });
  dict['04000561'] = { vr: 'SQ', Value: original };
  return msg.write() as ArrayBuffer;
}
