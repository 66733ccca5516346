/**
 * A small streaming parser for `multipart/related` bodies (RFC 2046 §5.1, RFC 2387), as STOW-RS sends them
 * (DICOM PS3.18 §10.5, §8.6.1.2). It is pull-based: parts are yielded one at a time and the next bytes are read
 * from the source only when the consumer asks for the next part, so backpressure reaches the client's socket.
 *
 * Memory bound: one part's body is kept, up to `maxPartBytes`; a longer part is skipped (its bytes are read and
 * dropped) and yielded with `body: null, overLimit: true`, and parsing goes on with the next part. Besides that, only
 * a boundary-length tail and one header block (at most `maxHeaderBytes`) are held. A part's body is kept as the
 * slices of the source chunks it arrived in (`chunks`): body bytes are not copied.
 *
 * Why our own: the maintained streaming parsers either accept only `multipart/form-data` (`@fastify/busboy`, used
 * for the upload API in `multipart-form.ts`) or abort the whole message when one part is too large.
 */
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/** The body is not a readable multipart message (no boundary, truncated, malformed headers): HTTP 400. */
export class MultipartError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DICOMWEB_MULTIPART';
  override name = 'MultipartError';
}

export interface MultipartPart {
  /** 0-based position in the message. */
  readonly index: number;
  /** Part headers with lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** Media type of the part without parameters, lower-case; undefined when the part has no Content-Type. */
  readonly mediaType: string | undefined;
  /** The part's bytes as they arrived (slices of the source's chunks, not copied), or null when over the limit. */
  readonly chunks: readonly Buffer[] | null;
  /** The part's bytes in one buffer (concatenated on first use), or null when it was longer than the limit. */
  readonly body: Buffer | null;
  /** Number of body bytes seen (also when over the limit). */
  readonly size: number;
  readonly overLimit: boolean;
  /** File name from a `Content-Disposition` header, if any. */
  readonly filename?: string;
}

export interface MultipartOptions {
  boundary: string;
  maxPartBytes: number;
  maxHeaderBytes?: number;
  /** Bytes of preamble tolerated before the first boundary. */
  maxPreambleBytes?: number;
}

export interface ContentType {
  /** Lower-case `type/subtype`. */
  readonly mediaType: string;
  /** Parameters with lower-case names; values unquoted. */
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses a Content-Type value leniently (RFC 9110 §8.3 plus real-world forms): parameter values may be quoted or
 * not, and an unquoted value may contain `/` (`type=application/dicom`, as several STOW clients send).
 */
export function parseContentType(value: string | undefined): ContentType | undefined {
  if (!value) return undefined;
  const parts = splitParams(value);
  const mediaType = (parts.shift() ?? '').trim().toLowerCase();
  if (!/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(mediaType)) return undefined;
  const params: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    if (name && !(name in params)) params[name] = v;
  }
  return { mediaType, params };
}

/** Splits on `;` outside quoted strings. */
function splitParams(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted && c === '\\' && i + 1 < value.length) {
      cur += c + value[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** RFC 2046 §5.1.1: 1 to 70 characters from a restricted set, not ending with a space. */
export function isValidBoundary(b: string): boolean {
  return /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/.test(b);
}

/** Reads the file name of a `Content-Disposition` header (`filename*=UTF-8''...` wins over `filename=`). */
export function dispositionFilename(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const params = parseContentType(`x/x;${value.slice(value.indexOf(';') + 1)}`)?.params ?? {};
  const star = params['filename*'];
  if (star) {
    const m = /^([A-Za-z0-9_-]+)'[^']*'(.*)$/.exec(star);
    if (m) {
      try {
        return decodeURIComponent(m[2]!);
      } catch {
        // fall back to filename=
      }
    }
  }
  return params['filename'];
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** Parses header lines of one part (RFC 5322 fields, folded lines joined). */
export function parsePartHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  const lines = block.split('\r\n');
  let last: string | undefined;
  for (const line of lines) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      headers[last] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`malformed part header line: ${JSON.stringify(line.slice(0, 60))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    last = name;
  }
  return headers;
}

/**
 * Yields the parts of a multipart body read from `source`. Throws {@link MultipartError} when the body has no
 * boundary, ends before the closing delimiter, or has malformed part headers.
 */
export async function* parseMultipart(
  source: AsyncIterable<Uint8Array>,
  opts: MultipartOptions,
): AsyncGenerator<MultipartPart, void, undefined> {
  if (!isValidBoundary(opts.boundary)) throw new MultipartError('invalid multipart boundary');
  const maxHeader = opts.maxHeaderBytes ?? 16 * 1024;
  const maxPreamble = opts.maxPreambleBytes ?? 64 * 1024;
  // The delimiter is CRLF "--" boundary; a virtual CRLF before the body lets the first boundary sit at offset 0.
  const delim = Buffer.from(`\r\n--${opts.boundary}`);
  const iterator = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.from(CRLF);
  let ended = false;
  let preambleSeen = 0;

  /** The next source chunk, or undefined at the end. */
  const pull = async (): Promise<Buffer | undefined> => {
    if (ended) return undefined;
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      return undefined;
    }
    const v = next.value;
    return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  };
  const more = async (): Promise<boolean> => {
    const chunk = await pull();
    if (!chunk) return false;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    return true;
  };

  // Preamble: find the first delimiter.
  for (;;) {
    const at = buf.indexOf(delim);
    if (at >= 0) {
      buf = buf.subarray(at + delim.length);
      break;
    }
    const keep = Math.min(buf.length, delim.length - 1);
    preambleSeen += buf.length - keep;
    buf = buf.subarray(buf.length - keep);
    if (preambleSeen > maxPreamble) throw new MultipartError('no multipart boundary found at the start of the body');
    if (!(await more())) throw new MultipartError('no multipart boundary found in the body');
  }

  let index = 0;
  for (;;) {
    // After a delimiter: "--" closes the message; otherwise optional transport padding, then CRLF.
    while (buf.length < 2) if (!(await more())) throw new MultipartError('multipart body ends after a boundary');
    if (buf[0] === 0x2d && buf[1] === 0x2d) {
      // Epilogue is ignored; drain it so that the connection stays usable.
      while (await more()) buf = Buffer.alloc(0);
      return;
    }
    for (;;) {
      let i = 0;
      while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
      if (i + 2 <= buf.length) {
        if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) throw new MultipartError('malformed multipart boundary line');
        buf = buf.subarray(i + 2);
        break;
      }
      if (i > 256) throw new MultipartError('malformed multipart boundary line');
      if (!(await more())) throw new MultipartError('multipart body ends after a boundary');
    }

    // Headers: up to an empty line (which may come at once when a part has no headers).
    let headers: Record<string, string>;
    for (;;) {
      if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
        headers = {};
        buf = buf.subarray(2);
        break;
      }
      const end = buf.indexOf(HEADER_END);
      if (end >= 0) {
        if (end > maxHeader) throw new MultipartError(`part headers longer than ${maxHeader} bytes`);
        headers = parsePartHeaders(buf.subarray(0, end).toString('latin1'));
        buf = buf.subarray(end + HEADER_END.length);
        break;
      }
      if (buf.length > maxHeader) throw new MultipartError(`part headers longer than ${maxHeader} bytes`);
      if (!(await more())) throw new MultipartError('multipart body ends inside part headers');
    }

    // Body: up to the next delimiter, keeping at most maxPartBytes.
    const chunks: Buffer[] = [];
    let size = 0;
    let overLimit = false;
    const take = (b: Buffer) => {
      if (b.length === 0) return;
      size += b.length;
      if (size > opts.maxPartBytes) {
        overLimit = true;
        chunks.length = 0;
      } else chunks.push(b); // slices of chunks the source never reuses
    };
    for (;;) {
      const at = buf.indexOf(delim);
      if (at >= 0) {
        take(buf.subarray(0, at));
        buf = buf.subarray(at + delim.length);
        break;
      }
      const safe = Math.max(0, buf.length - (delim.length - 1));
      take(buf.subarray(0, safe));
      buf = buf.subarray(safe);
      const chunk = await pull();
      if (!chunk) throw new MultipartError('multipart body ends inside a part (no closing boundary)');
      // The tail kept back (shorter than the delimiter) is body unless a delimiter starts in it: then, and when the
      // new chunk is too short to tell, tail and chunk are joined (a copy of one chunk, about once per part).
      if (buf.length > 0 && chunk.length >= delim.length - 1) {
        const probe = Buffer.concat([buf, chunk.subarray(0, delim.length - 1)]);
        const d = probe.indexOf(delim);
        if (d < 0 || d >= buf.length) {
          take(buf);
          buf = chunk;
          continue;
        }
      }
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    }
    const contentType = headers['content-type'];
    const filename = dispositionFilename(headers['content-disposition']);
    const kept = overLimit ? null : chunks;
    let joined: Buffer | undefined;
    yield {
      index: index++,
      headers,
      mediaType: contentType ? parseContentType(contentType)?.mediaType : undefined,
      chunks: kept,
      get body() {
        if (!kept) return null;
        joined ??= kept.length === 1 ? kept[0]! : Buffer.concat(kept, size);
        return joined;
      },
      size,
      overLimit,
      ...(filename !== undefined ? { filename } : {}),
    };
  }
}
