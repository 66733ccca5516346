/**
 * RetrieveURL (0008,1190) and BulkDataURI in Orthanc's answers must point at the facade's public `/dicom-web`,
 * never at Orthanc, which clients cannot reach. Orthanc's DICOMweb plugin 1.7 builds them as `<proto>://<host><its root>` from the RFC 7239
 * `Forwarded: host=...;proto=...` request header (it ignores `X-Forwarded-Host`), copying `host` verbatim. So:
 * - the facade sends `Forwarded: host=<public host + path prefix>;proto=<public scheme>` with every request, computed
 *   once at start-up: no per-request work and no body rewriting when Orthanc's root is `/dicom-web`;
 * - if Orthanc's DICOMweb root is elsewhere, the prefix Orthanc writes is replaced in JSON answers by a streaming
 *   {@link ReplaceStream} (chunk-boundary safe).
 */
import { Transform, type TransformCallback } from 'node:stream';

export const PUBLIC_DICOMWEB_PATH = '/dicom-web';

export interface PublicUrlPlan {
  /** `Forwarded` header value for every request to Orthanc. */
  forwarded: string;
  /** The public DICOMweb root, e.g. `https://ehr.example.org/imaging/dicom-web`. */
  publicRoot: string;
  /** When set, `from` (what Orthanc writes) must be replaced by `to` in JSON answers. */
  rewrite?: { from: string; to: string };
}

/** Plans the URL handling from the public base URL (may carry a path prefix) and Orthanc's DICOMweb root path. */
export function planPublicUrls(publicBaseUrl: string, orthancDicomWebRoot: string): PublicUrlPlan {
  const u = new URL(publicBaseUrl);
  const prefix = u.pathname.replace(/\/+$/, '');
  const proto = u.protocol.replace(/:$/, '');
  const forwarded = `host=${u.host}${prefix};proto=${proto}`;
  const base = `${u.protocol}//${u.host}${prefix}`;
  const publicRoot = `${base}${PUBLIC_DICOMWEB_PATH}`;
  const root = orthancDicomWebRoot.replace(/\/+$/, '');
  if (root === PUBLIC_DICOMWEB_PATH) return { forwarded, publicRoot };
  return { forwarded, publicRoot, rewrite: { from: `${base}${root}/`, to: `${publicRoot}/` } };
}

/**
 * Replaces every occurrence of `from` by `to` in a byte stream, holding back at most `from.length - 1` bytes between
 * chunks so that a match split across chunks is still found.
 */
export class ReplaceStream extends Transform {
  readonly #from: Buffer;
  readonly #to: Buffer;
  #tail: Buffer = Buffer.alloc(0);

  constructor(from: string, to: string) {
    super();
    if (from.length === 0) throw new Error('ReplaceStream: empty pattern');
    this.#from = Buffer.from(from);
    this.#to = Buffer.from(to);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const data = this.#tail.length ? Buffer.concat([this.#tail, chunk]) : chunk;
    const parts: Buffer[] = [];
    let start = 0;
    for (let at = data.indexOf(this.#from, start); at >= 0; at = data.indexOf(this.#from, start)) {
      parts.push(data.subarray(start, at), this.#to);
      start = at + this.#from.length;
    }
    const keep = Math.max(start, data.length - (this.#from.length - 1));
    parts.push(data.subarray(start, keep));
    this.#tail = Buffer.from(data.subarray(keep));
    done(null, Buffer.concat(parts));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.#tail);
  }
}

/** Replaces `from` by `to` in a whole string (for answers the facade builds itself). */
export function replaceAll(text: string, rewrite: PublicUrlPlan['rewrite']): string {
  return rewrite ? text.split(rewrite.from).join(rewrite.to) : text;
}
