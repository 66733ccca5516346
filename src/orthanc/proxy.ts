/**
 * Streaming access to Orthanc for the DICOMweb proxy (node:http with a keep-alive agent). Answers are handed back as
 * Node streams, so the route pipes them to the client unchanged, with backpressure, and never holds a whole study.
 *
 * - Orthanc's credentials are added here; the client's `Authorization` (or any other client header except `Accept`)
 *   is never forwarded.
 * - A keep-alive pool whose idle sockets are dropped well under Orthanc's `Keep-Alive: timeout=1` (Node's default
 *   1 s safety buffer would otherwise refuse to reuse any Orthanc socket at all).
 * - `signal` aborts the upstream request (the client went away); time-outs and connection faults become
 *   {@link OrthancUnavailableError} (`timedOut` → 504, otherwise 502).
 *
 * Why not undici: Orthanc streams study and series retrievals close-delimited (`Connection: close`, no length), and
 * undici 7 asserts (an uncaught exception) when such a socket ends while the parser is paused by backpressure, i.e.
 * whenever the client reads slower than Orthanc writes. node:http handles that case.
 */
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { OrthancUnavailableError } from './errors.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export interface OrthancProxyOptions {
  url: string;
  /** `Basic ...` for Orthanc. */
  authorization: string;
  /** Time allowed without any byte from Orthanc: for the answer's headers and for each gap in the body. */
  timeoutMs: number;
  /** RFC 7239 `Forwarded` value sent with every request, so that Orthanc builds public URLs. */
  forwarded?: string;
  connections?: number;
  /** Orthanc's circuit breaker, shared with {@link OrthancClient}: checked before each request, told each outcome. */
  breaker?: CircuitBreaker | undefined;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

/** Idle time after which pooled sockets are closed: below Orthanc's 1 s keep-alive. */
export const UPSTREAM_IDLE_MS = 700;

export class UpstreamTimeout extends EhrError {
  override readonly code: ErrorCode = 'EHR_ORTHANC_TIMEOUT';
  override name = 'UpstreamTimeout';
}

export class OrthancProxy {
  readonly #agent: Agent;
  readonly #url: URL;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #breaker: CircuitBreaker | undefined;

  constructor(opts: OrthancProxyOptions) {
    this.#breaker = opts.breaker;
    this.#url = new URL(opts.url);
    this.#base = this.#url.pathname.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs;
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: opts.connections ?? 32,
      maxFreeSockets: opts.connections ?? 32,
      scheduling: 'lifo',
      timeout: UPSTREAM_IDLE_MS,
      agentKeepAliveTimeoutBuffer: 1000 - UPSTREAM_IDLE_MS,
    } as ConstructorParameters<typeof Agent>[0]);
    this.#headers = { authorization: opts.authorization, ...(opts.forwarded ? { forwarded: opts.forwarded } : {}) };
  }

  /** Requests in flight or waiting for a socket (for tests and diagnostics). */
  pending(): number {
    let n = 0;
    for (const list of Object.values(this.#agent.sockets)) n += list?.length ?? 0;
    for (const list of Object.values(this.#agent.requests)) n += list?.length ?? 0;
    return n;
  }

  /**
   * GETs `path` (absolute Orthanc path with query) and returns status, headers and the streaming body; with `json`,
   * POSTs that JSON body instead (Orthanc routes that take their arguments as a body, e.g. `/tools/create-archive`).
   * The caller must consume or destroy the body.
   */
  get(
    path: string,
    opts: { accept?: string; acceptEncoding?: string; signal?: AbortSignal; json?: unknown } = {},
  ): Promise<UpstreamResponse> {
    this.#breaker?.check();
    const breaker = this.#breaker;
    const headers = {
      ...this.#headers,
      ...(opts.accept ? { accept: opts.accept } : {}),
      ...(opts.acceptEncoding ? { 'accept-encoding': opts.acceptEncoding } : {}),
      ...(opts.json === undefined ? {} : { 'content-type': 'application/json' }),
    };
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        protocol: this.#url.protocol,
        hostname: this.#url.hostname,
        port: this.#url.port,
        method: opts.json === undefined ? 'GET' : 'POST',
        path: `${this.#base}${path}`,
        headers,
        agent: this.#agent,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      req.setTimeout(this.#timeoutMs, () => req.destroy(new UpstreamTimeout('upstream time-out')));
      req.once('response', (res: IncomingMessage) => {
        // An abort or time-out after the answer started destroys `res` with an error. Whoever consumes the body
        // (Fastify's piping, readText) hears about it through its own listener; this one only keeps an error on a
        // body nobody reads any more (client already gone) from becoming an uncaught exception.
        res.on('error', (err) => {
          // Orthanc stopped sending mid-answer (a hung process): open the breaker; a client abort says nothing.
          if ((err as { code?: string }).code === 'EHR_ORTHANC_TIMEOUT')
            breaker?.failure('no answer within the time-out');
        });
        breaker?.success();
        resolve({ status: res.statusCode ?? 502, headers: flatten(res.headers), body: res });
      });
      req.on('error', (err) => {
        if (opts.signal?.aborted) reject(err);
        else {
          const unavailable = toUnavailable(err, this.#timeoutMs);
          breaker?.failure(unavailable.message);
          reject(unavailable);
        }
      });
      req.end(opts.json === undefined ? undefined : JSON.stringify(opts.json));
    });
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

  async close(): Promise<void> {
    this.#agent.destroy();
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

function flatten(headers: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** Maps a request failure to {@link OrthancUnavailableError}; the message names the fault, not Orthanc's address. */
export function toUnavailable(err: unknown, timeoutMs: number): OrthancUnavailableError {
  if (err instanceof OrthancUnavailableError) return err;
  const code = (err as { code?: string }).code ?? '';
  const timedOut = code === 'EHR_ORTHANC_TIMEOUT' || code === 'ETIMEDOUT';
  const reason = timedOut ? `no answer within ${timeoutMs} ms` : code || 'connection failed';
  return new OrthancUnavailableError(`image archive unavailable: ${reason}`, timedOut, { cause: err });
}
