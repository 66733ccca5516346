/**
 * Streaming access to Orthanc for the DICOMweb proxy (undici). Answers are handed back as Node streams, so the route
 * pipes them to the client unchanged, with backpressure, and never holds a whole study in memory.
 *
 * - Orthanc's credentials are added here; the client's `Authorization` (or any other client header except `Accept`)
 *   is never forwarded.
 * - A keep-alive pool whose idle sockets are dropped well under Orthanc's `Keep-Alive: timeout=1` (undici's default
 *   threshold of 2 s would otherwise refuse to reuse any Orthanc socket at all).
 * - `signal` aborts the upstream request (the client went away); time-outs and connection faults become
 *   {@link OrthancUnavailableError} (`timedOut` → 504, otherwise 502).
 */
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { OrthancUnavailableError } from './errors.ts';

export interface OrthancProxyOptions {
  url: string;
  /** `Basic ...` for Orthanc. */
  authorization: string;
  /** Time allowed for the answer's headers, and for each gap between body chunks. */
  timeoutMs: number;
  /** RFC 7239 `Forwarded` value sent with every request, so that Orthanc builds public URLs. */
  forwarded?: string;
  connections?: number;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

/** Idle time after which pooled sockets are closed: below Orthanc's 1 s keep-alive. */
export const UPSTREAM_IDLE_MS = 700;

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export class OrthancProxy {
  readonly #pool: Pool;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(opts: OrthancProxyOptions) {
    const url = new URL(opts.url);
    this.#base = url.pathname.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs;
    this.#pool = new Pool(url.origin, {
      connections: opts.connections ?? 32,
      pipelining: 1,
      keepAliveTimeout: UPSTREAM_IDLE_MS,
      keepAliveMaxTimeout: UPSTREAM_IDLE_MS,
      keepAliveTimeoutThreshold: 250,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: Math.min(opts.timeoutMs, 10_000) },
    });
    this.#headers = { authorization: opts.authorization, ...(opts.forwarded ? { forwarded: opts.forwarded } : {}) };
  }

  /**
   * GETs `path` (absolute Orthanc path with query) and returns status, headers and the streaming body.
   * The caller must consume or destroy the body.
   */
  async get(path: string, opts: { accept?: string; signal?: AbortSignal } = {}): Promise<UpstreamResponse> {
    const headers = { ...this.#headers, ...(opts.accept ? { accept: opts.accept } : {}) };
    try {
      const res = await this.#pool.request({
        method: 'GET',
        path: `${this.#base}${path}`,
        headers,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { status: res.statusCode, headers: flatten(res.headers), body: res.body };
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw toUnavailable(err, this.#timeoutMs);
    }
  }

  /** GETs and parses JSON (small answers only: QIDO chunks and error bodies). */
  async getJson(
    path: string,
    opts: { accept?: string; signal?: AbortSignal } = {},
  ): Promise<{ status: number; json: unknown }> {
    const res = await this.get(path, opts);
    try {
      const text = await readText(res.body, 64 * 1024 * 1024);
      return { status: res.status, json: text ? JSON.parse(text) : null };
    } catch (err) {
      if (err instanceof SyntaxError) return { status: res.status, json: null };
      throw toUnavailable(err, this.#timeoutMs);
    }
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** Reads a (small) stream into a string, refusing more than `max` bytes. */
export async function readText(body: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new Error(`answer larger than ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function flatten(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** Maps an undici failure to {@link OrthancUnavailableError}; the message names the fault, not Orthanc's address. */
export function toUnavailable(err: unknown, timeoutMs: number): OrthancUnavailableError {
  if (err instanceof OrthancUnavailableError) return err;
  const code = (err as { code?: string }).code ?? '';
  const timedOut = TIMEOUT_CODES.has(code);
  const reason = timedOut ? `no answer within ${timeoutMs} ms` : code || 'connection failed';
  return new OrthancUnavailableError(`image archive unavailable: ${reason}`, timedOut, { cause: err });
}
