/**
 * Keeps WADO-RS requests from making Orthanc transcode pixel data: Orthanc 1.10.1's GDCM plugin crashes the whole
 * server (SIGSEGV) on such conversions. Measured on a throwaway Orthanc 1.10.1 with the pydicom JPEG, JPEG-LS,
 * JPEG 2000 and RLE test files (docs/operations.md, "Requests Orthanc crashes on"):
 *
 * - frames as `image/jls`: crashed on every compressed instance; as `image/jp2` or `image/jpeg`: on several;
 * - instances as `application/dicom` with JPEG-LS (1.2.840.10008.1.2.4.80): on every one;
 * - decompression (frames or instances in Explicit/Implicit VR Little Endian, which is also the DICOMweb default when
 *   no transfer syntax is named): on about one request in four, not reproducibly on the same instance;
 * - `transfer-syntax=*` (as stored, no conversion) and rendered images: never (over 150 requests).
 *
 * So the facade never asks Orthanc for a conversion of compressed data:
 * - an Accept range with `transfer-syntax=*` is forwarded alone (the stored encoding, PS3.18 §8.7.3.5.2);
 * - a request that names a compressed target (an `image/*` frame type, or a compressed transfer syntax UID) gets
 *   406, naming what to ask for instead;
 * - study, series and instance retrieval (`application/dicom`) otherwise gets the stored encoding: each part is a
 *   DICOM Part 10 file whose meta header names its transfer syntax, and a `Warning` says so;
 * - frames (raw pixel data, whose encoding only the part's Content-Type states) in an uncompressed syntax are served
 *   as asked when the instance is stored uncompressed, and refused with 406 when it is stored compressed.
 * Pure: no I/O.
 */

/** Transfer syntaxes without pixel compression (PS3.5 Annex A): converting between them involves no codec. */
export const UNCOMPRESSED = new Set([
  '1.2.840.10008.1.2', // Implicit VR Little Endian
  '1.2.840.10008.1.2.1', // Explicit VR Little Endian
  '1.2.840.10008.1.2.1.99', // Deflated Explicit VR Little Endian
  '1.2.840.10008.1.2.2', // Explicit VR Big Endian (retired)
]);

export const AS_STORED_HINT =
  'ask for the stored encoding with transfer-syntax=* (e.g. Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*)';

export interface AcceptRange {
  /** `multipart/related`, `application/dicom`, `*\/*`... (lower case). */
  media: string;
  /** The `type` parameter of multipart/related (lower case, unquoted), when given. */
  type: string | undefined;
  /** The `transfer-syntax` parameter, when given. */
  transferSyntax: string | undefined;
  raw: string;
}

/** Splits an Accept header into its ranges (RFC 9110 §12.5.1); quoted parameter values may contain `,` and `;`. */
export function parseAccept(accept: string | undefined): AcceptRange[] {
  if (!accept?.trim()) return [];
  const ranges: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of accept) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      ranges.push(cur);
      cur = '';
    } else cur += ch;
  }
  ranges.push(cur);
  return ranges
    .map((r) => r.trim())
    .filter(Boolean)
    .map((raw) => {
      const [media = '', ...params] = raw.split(/;(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((p) => p.trim());
      const p = new Map<string, string>();
      for (const param of params) {
        const i = param.indexOf('=');
        if (i > 0)
          p.set(
            param.slice(0, i).trim().toLowerCase(),
            param
              .slice(i + 1)
              .trim()
              .replace(/^"|"$/g, ''),
          );
      }
      return {
        media: media.toLowerCase(),
        type: p.get('type')?.toLowerCase(),
        transferSyntax: p.get('transfer-syntax'),
        raw,
      };
    });
}

export type FenceDecision =
  /** Forward this Accept (undefined: the client's own, unchanged). */
  | { action: 'forward'; accept: string | undefined; warning?: string }
  /** Forward only if every instance addressed is stored uncompressed (frames); otherwise refuse. */
  | { action: 'check-stored'; accept: string | undefined }
  | { action: 'refuse'; reason: string };

const isWildcard = (r: AcceptRange) => r.transferSyntax === '*';
/** A range whose answer Orthanc would have to encode with a codec (a compressed target). */
function wantsCompression(r: AcceptRange, frames: boolean): boolean {
  if (r.transferSyntax !== undefined && r.transferSyntax !== '*') return !UNCOMPRESSED.has(r.transferSyntax);
  const type = r.media === 'multipart/related' ? r.type : r.media;
  return frames && type?.startsWith('image/') === true;
}

/**
 * Decides what to ask Orthanc for, given the client's Accept. `frames`: a frames request (raw pixel data); otherwise
 * a study, series or instance retrieval (Part 10 files).
 */
export function fenceTranscoding(accept: string | undefined, frames: boolean): FenceDecision {
  const ranges = parseAccept(accept);
  const wildcard = ranges.filter(isWildcard);
  if (wildcard.length) return { action: 'forward', accept: wildcard.map((r) => r.raw).join(', ') };
  const safe = ranges.filter((r) => !wantsCompression(r, frames));
  if (ranges.length && !safe.length) {
    const named = ranges[0]!.transferSyntax ?? ranges[0]!.type ?? ranges[0]!.media;
    return { action: 'refuse', reason: `The archive does not convert images to ${named}; ${AS_STORED_HINT}` };
  }
  const kept = safe.length === ranges.length ? accept : safe.map((r) => r.raw).join(', ');
  if (frames) return { action: 'check-stored', accept: kept };
  const partTypes = safe.map((r) => (r.media === 'multipart/related' ? (r.type ?? 'application/dicom') : r.media));
  if (!partTypes.every((t) => t === 'application/dicom' || t === '*/*')) return { action: 'forward', accept: kept };
  const type = 'multipart/related; type="application/dicom"; transfer-syntax=*';
  return {
    action: 'forward',
    accept: type,
    warning: 'Served in the stored transfer syntax (named in each file); the archive does not convert images',
  };
}
