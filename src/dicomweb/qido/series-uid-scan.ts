/**
 * Learning the SeriesInstanceUIDs (0020,000E) of a series-level QIDO-RS answer (DICOM PS3.18 §10.6, DICOM JSON
 * PS3.18 §F.2) while it streams to the client, without buffering or parsing it: the relay hands each chunk on
 * unchanged and a copy is scanned for `"0020000E": {... "Value": ["<uid>"] ...}`, stopping after the first few
 * UIDs or a bounded number of bytes. Orthanc's answer may be compressed (the client's Accept-Encoding is passed on):
 * gzip, deflate and br are inflated on the side (RFC 9110 §8.4.1); any other coding is not scanned.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** A JSON member `"0020000E": { ... }` (its object holds only strings and a string array: no nested braces). */
const SERIES_ELEMENT = /"0020000E"\s*:\s*\{([^{}]*)\}/gi;
const FIRST_VALUE = /"Value"\s*:\s*\[\s*"([0-9.]{1,64})"/;
/** Longer than any member the pattern matches in practice: kept between chunks so a split member is still found. */
const CARRY = 1024;

/**
 * Finds the first `max` distinct SeriesInstanceUIDs of DICOM JSON text given in pieces (any split). Pure.
 * Only UIDs (digits and dots, ≤ 64 characters, PS3.5 §9.1) are taken; everything else is ignored.
 */
export class SeriesUidScanner {
  readonly #max: number;
  readonly #found = new Set<string>();
  #carry = '';

  constructor(max: number) {
    this.#max = max;
  }

  /** The UIDs found so far, in answer order. */
  get uids(): string[] {
    return [...this.#found];
  }

  /** Has it found `max` UIDs (the rest need not be scanned)? */
  get full(): boolean {
    return this.#found.size >= this.#max;
  }

  /** Scans the next piece of text (bytes decoded as latin1 keep ASCII intact whatever the split). */
  push(text: string): void {
    if (this.full) return;
    const data = this.#carry + text;
    let end = 0;
    SERIES_ELEMENT.lastIndex = 0;
    for (let m = SERIES_ELEMENT.exec(data); m; m = SERIES_ELEMENT.exec(data)) {
      end = SERIES_ELEMENT.lastIndex;
      const uid = FIRST_VALUE.exec(m[1] ?? '')?.[1];
      if (uid !== undefined && !uid.startsWith('.') && !uid.endsWith('.') && !uid.includes('..')) {
        this.#found.add(uid);
        if (this.full) break;
      }
    }
    this.#carry = data.slice(Math.max(end, data.length - CARRY));
  }
}

/** Content codings the tap can read (RFC 9110 §8.4.1); `identity` or none means plain. */
export type ScannableCoding = 'identity' | 'gzip' | 'deflate' | 'br';

/** The coding of a `Content-Encoding` value, or undefined when the tap cannot read it (several or unknown codings). */
export function scannableCoding(contentEncoding: string | undefined): ScannableCoding | undefined {
  const v = (contentEncoding ?? '').trim().toLowerCase();
  if (v === '' || v === 'identity') return 'identity';
  if (v === 'gzip' || v === 'x-gzip') return 'gzip';
  if (v === 'deflate' || v === 'br') return v;
  return undefined;
}

export interface SeriesUidTapOptions {
  coding: ScannableCoding;
  /** UIDs wanted. */
  max: number;
  /** Decoded bytes scanned at most. */
  maxScanBytes: number;
  /** Called once, when the answer was passed on completely: the UIDs found (possibly none). */
  onUids: (uids: string[]) => void;
  /** Called once when the tap is finished, whatever happened (after `onUids` if that is called). */
  onSettled: (err?: Error) => void;
}

/**
 * A pass-through stream that scans a copy of what flows through with a {@link SeriesUidScanner}. Never holds more
 * than one chunk (and the decoder's window); the answer to the client is unaffected by anything the scan does.
 */
export class SeriesUidTap extends Transform {
  readonly #opts: SeriesUidTapOptions;
  readonly #scanner: SeriesUidScanner;
  readonly #decoder: Transform | undefined;
  #scanned = 0;
  #stopped = false;
  #flushed = false;
  #settled = false;

  constructor(opts: SeriesUidTapOptions) {
    super();
    this.#opts = opts;
    this.#scanner = new SeriesUidScanner(opts.max);
    const make = { identity: undefined, gzip: createGunzip, deflate: createInflate, br: createBrotliDecompress }[
      opts.coding
    ];
    this.#decoder = make?.();
    this.#decoder?.on('data', (chunk: Buffer) => this.#scan(chunk));
    // A body that does not decode stops the scan, never the answer.
    this.#decoder?.on('error', () => this.#stop());
  }

  #scan(chunk: Buffer): void {
    if (this.#stopped) return;
    const room = this.#opts.maxScanBytes - this.#scanned;
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.#scanned += piece.length;
    this.#scanner.push(piece.toString('latin1'));
    if (this.#scanner.full || this.#scanned >= this.#opts.maxScanBytes) this.#stop();
  }

  /** Stops scanning (and decoding): what was found is what will be reported. */
  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#decoder?.destroy();
  }

  #settle(err?: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#opts.onSettled(err);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (!this.#stopped) {
      if (this.#decoder) this.#decoder.write(chunk);
      else this.#scan(chunk);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.#flushed = true;
    const report = () => {
      this.#stop();
      this.#opts.onUids(this.#scanner.uids);
      this.#settle();
    };
    const decoder = this.#decoder;
    if (!decoder || this.#stopped) report();
    else {
      // The decoder's last output comes before its 'close' (also after an error or a stop: what was found is reported).
      decoder.once('close', report);
      decoder.end();
    }
    done();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    // After a complete answer the report settles; before it (failure, client gone), nothing is reported.
    if (!this.#flushed) {
      this.#stop();
      this.#settle(err ?? undefined);
    }
    done(err);
  }
}
