/**
 * Checks of the values of a DICOM data set that the facade reads, matches or writes to PostgreSQL, made before an
 * instance is stored (STOW-RS) or linked (change feed). Pure: no I/O.
 *
 * - Identifying attributes must have one value (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.12.1: VM 1): a PatientID of
 *   `MRN\OTHER` would otherwise be matched by its first value only.
 * - No NUL inside a string (PostgreSQL text and jsonb cannot hold it); a UI value may end with one NUL as padding
 *   (PS3.5 §6.2, §9.1).
 * - No U+FFFD REPLACEMENT CHARACTER: the parser puts it where bytes were not valid in the declared character set
 *   (e.g. invalid UTF-8 under ISO_IR 192, PS3.5 §6.1), so a value carrying it is not what the sender meant.
 * - Bounded length, for the attributes the facade reads, indexes or answers queries with ({@link KEYWORDS}): the
 *   VR's maximum (PS3.5 Table 6.2-1) with 64 characters as the least bound, since real modalities overrun SH and CS;
 *   a PN value may have 64 characters per component group. Other elements are not bounded here (Orthanc keeps them,
 *   the facade never writes them to an index).
 */

/** Attributes that identify the patient, study, series, instance or order: exactly one value each. */
export const SINGLE_VALUED: Readonly<Record<string, string>> = {
  '00100020': 'PatientID',
  '0020000D': 'StudyInstanceUID',
  '0020000E': 'SeriesInstanceUID',
  '00080018': 'SOPInstanceUID',
  '00080050': 'AccessionNumber',
};

/** The attributes the facade reads, indexes or shows: named in refusals by keyword, and length-bounded. */
const KEYWORDS: Readonly<Record<string, string>> = {
  ...SINGLE_VALUED,
  '00080005': 'SpecificCharacterSet',
  '00080016': 'SOPClassUID',
  '00080020': 'StudyDate',
  '00080030': 'StudyTime',
  '00080060': 'Modality',
  '00080090': 'ReferringPhysicianName',
  '00080201': 'TimezoneOffsetFromUTC',
  '00081030': 'StudyDescription',
  '0008103E': 'SeriesDescription',
  '00100010': 'PatientName',
  '00100030': 'PatientBirthDate',
  '00100040': 'PatientSex',
  '00180015': 'BodyPartExamined',
  '00200010': 'StudyID',
  '00200011': 'SeriesNumber',
  '00200013': 'InstanceNumber',
  '00280008': 'NumberOfFrames',
};

/** Text VRs (PS3.5 Table 6.2-1) and, for the short ones, their maximum length in characters. */
const TEXT_VRS: Readonly<Record<string, number | undefined>> = {
  AE: 16,
  AS: 4,
  CS: 16,
  DA: 8,
  DS: 16,
  DT: 26,
  IS: 12,
  LO: 64,
  PN: 64,
  SH: 16,
  TM: 14,
  UI: 64,
  LT: undefined,
  ST: undefined,
  UT: undefined,
  UC: undefined,
  UR: undefined,
};

/** The least bound applied to the short VRs (see the module comment). */
export const MIN_BOUND = 64;

/** `PatientName (0010,0010)` or `(gggg,eeee)`. */
export function elementName(tag: string): string {
  const t = tag.toUpperCase();
  const punctuated = `(${t.slice(0, 4)},${t.slice(4)})`;
  return KEYWORDS[t] ? `${KEYWORDS[t]} ${punctuated}` : punctuated;
}

/** A PN value as dcmjs gives it ({Alphabetic, Ideographic, Phonetic}) as its DICOM string. */
function pnString(v: Record<string, unknown>): string {
  const groups = [v['Alphabetic'], v['Ideographic'], v['Phonetic']].map((g) => (typeof g === 'string' ? g : ''));
  while (groups.length > 1 && groups[groups.length - 1] === '') groups.pop();
  return groups.join('=');
}

/** The problem with one string value of an element, in words, or undefined. */
export function valueProblem(tag: string, vr: string, value: string, utf8: boolean): string | undefined {
  const name = elementName(tag);
  const v = vr === 'UI' ? value.replace(/\0$/, '') : value;
  if (v.includes('\0')) return `${name} contains a NUL character`;
  if (v.includes('\uFFFD')) {
    return utf8
      ? `${name} is not valid UTF-8 (SpecificCharacterSet ISO_IR 192)`
      : `${name} has characters that are not valid in its character set`;
  }
  const max = TEXT_VRS[vr];
  if (max === undefined || !KEYWORDS[tag.toUpperCase()]) return undefined;
  const bound = Math.max(max, MIN_BOUND);
  if (vr === 'PN') {
    if (v.split('=').some((g) => g.length > bound)) return `${name} is longer than ${bound} characters`;
  } else if (v.length > bound) {
    return `${name} is longer than ${bound} characters`;
  }
  return undefined;
}

/** One data set element as dcmjs reads it (DICOM JSON model, PS3.18 Annex F). */
export interface ElementLike {
  vr: string;
  Value?: unknown[];
}

/**
 * Every problem of a data set's standard (even-group) top-level text elements, in words, each naming its element:
 * several values in an identifying attribute, a NUL, invalid characters, an overlong value. Private elements are not
 * read by the facade and are left to Orthanc.
 */
export function datasetProblems(ds: Readonly<Record<string, ElementLike>>): string[] {
  const charset = ds['00080005']?.Value?.map(String) ?? [];
  const utf8 = charset.some((c) => c.trim().toUpperCase() === 'ISO_IR 192');
  const out: string[] = [];
  for (const [tag, el] of Object.entries(ds)) {
    if (Number.parseInt(tag.slice(0, 4), 16) % 2 === 1 || !(el.vr in TEXT_VRS)) continue;
    const values = (el.Value ?? []).filter((v) => v !== null && v !== undefined);
    const nonEmpty = values.filter((v) => !(typeof v === 'string' && v.replace(/[\0 ]+$/, '') === ''));
    if (SINGLE_VALUED[tag.toUpperCase()] && nonEmpty.length > 1) {
      out.push(`${elementName(tag)} has ${nonEmpty.length} values; exactly one is allowed`);
      continue;
    }
    for (const v of values) {
      if (typeof v !== 'string' && (typeof v !== 'object' || el.vr !== 'PN')) continue;
      const s = typeof v === 'string' ? v : pnString(v as Record<string, unknown>);
      const problem = valueProblem(tag, el.vr, s, utf8);
      if (problem) {
        out.push(problem);
        break;
      }
    }
  }
  return out;
}

/**
 * The problems of one value as Orthanc reports it (`instances-tags?short`: tag `gggg,eeee` → string, values of a
 * multi-valued attribute joined by `\`), for the change feed: the same rules as {@link datasetProblems}.
 */
export function orthancValueProblems(tags: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  for (const [key, raw] of Object.entries(tags)) {
    if (typeof raw !== 'string') continue;
    const tag = key.replace(',', '').toUpperCase();
    if (tag.length !== 8 || Number.parseInt(tag.slice(0, 4), 16) % 2 === 1) continue;
    if (SINGLE_VALUED[tag] && raw.split('\\').filter((v) => v.trim() !== '').length > 1) {
      out.push(`${elementName(tag)} has several values; exactly one is allowed`);
      continue;
    }
    const vr = VR_OF[tag];
    for (const v of raw.split('\\')) {
      const problem = valueProblem(tag, vr ?? 'UT', v, false);
      if (problem) {
        out.push(problem);
        break;
      }
    }
  }
  return out;
}

/** VRs of the attributes the change feed reads from Orthanc (which reports values without their VR). */
const VR_OF: Readonly<Record<string, string>> = {
  '00100020': 'LO',
  '0020000D': 'UI',
  '0020000E': 'UI',
  '00080018': 'UI',
  '00080016': 'UI',
  '00080050': 'SH',
  '00080020': 'DA',
  '00080030': 'TM',
  '00080060': 'CS',
  '00080201': 'SH',
  '00081030': 'LO',
  '0008103E': 'LO',
  '00100010': 'PN',
  '00100030': 'DA',
  '00100040': 'CS',
  '00180015': 'CS',
  '00200011': 'IS',
  '00200013': 'IS',
  '00280008': 'IS',
};

/**
 * Transfer syntaxes the facade accepts (PS3.5 §10 and Annex A; PS3.6 Table A-1), all of which Orthanc 1.10.1 (DCMTK)
 * parses and stores. An instance in any other (or none) is refused before it reaches Orthanc.
 */
export const ACCEPTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, First-Order Prediction (Process 14 SV1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.104': 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video',
  '1.2.840.10008.1.2.4.105': 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video',
  '1.2.840.10008.1.2.4.106': 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2',
};

/** Why a transfer syntax is refused, in words, or undefined when it is accepted. */
export function transferSyntaxProblem(uid: string | undefined): string | undefined {
  if (uid === undefined || uid === '') return 'TransferSyntaxUID (0002,0010) is empty';
  if (ACCEPTED_TRANSFER_SYNTAXES[uid]) return undefined;
  return `transfer syntax ${uid.slice(0, 64)} is not supported`;
}
