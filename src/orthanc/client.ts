import http from 'node:http';
import https from 'node:https';
import type { CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { OrthancHttpError, OrthancUnavailableError } from './errors.ts';

export interface OrthancClientOptions {
  url: string;
  username: string;
  password: string;
  timeoutMs: number;
  /**
   * Orthanc's circuit breaker (src/resilience/circuit-breaker.ts), shared with the DICOMweb proxy: every request checks it
   * first (failing fast while Orthanc is known to be down) and reports whether Orthanc answered.
   */
  breaker?: CircuitBreaker | undefined;
}

/** Subset of Orthanc's `GET /system` answer that we use. */
export interface OrthancSystem {
  Version: string;
  ApiVersion: number;
  DicomAet: string;
  DatabaseBackendPlugin: string | null;
  StorageAreaPlugin: string | null;
  Name: string;
}

/** Orthanc's answer to `POST /instances`. */
export interface OrthancStoredInstance {
  ID: string;
  ParentPatient: string;
  ParentStudy: string;
  ParentSeries: string;
  Path: string;
  Status: 'Success' | 'AlreadyStored' | string;
}

/** How long a kept-alive connection to Orthanc may stay idle (Orthanc itself closes it after 1 s). */
export const IDLE_SOCKET_MS = 500;

/**
 * Typed client for Orthanc's REST API (https://orthanc.uclouvain.be/api/). The credentials live here and are never
 * forwarded from or to clients of the facade.
 */
export class OrthancClient {
  readonly baseUrl: string;
  readonly authorization: string;
  readonly timeoutMs: number;
  readonly breaker: CircuitBreaker | undefined;

  constructor(opts: OrthancClientOptions) {
    this.baseUrl = opts.url.replace(/\/+$/, '');
    this.breaker = opts.breaker;
    this.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;
    this.timeoutMs = opts.timeoutMs;
    const agentOptions = {
      keepAlive: true,
      timeout: IDLE_SOCKET_MS,
      // Subtracted from the server's Keep-Alive hint (Orthanc: 1 s) instead of Node's 1000 ms default, which leaves 0.
      agentKeepAliveTimeoutBuffer: 1000 - IDLE_SOCKET_MS,
      scheduling: 'lifo' as const,
    };
    this.storeAgent = this.baseUrl.startsWith('https:') ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  }

  /**
   * Performs a request with credentials and a time-out; network faults become {@link OrthancUnavailableError} and open
   * the breaker. `probe` requests (the breaker's own) skip the breaker check.
   */
  async request(path: string, init: RequestInit & { timeoutMs?: number; probe?: boolean } = {}): Promise<Response> {
    if (!init.probe) this.breaker?.check();
    const timeout = AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const headers = new Headers(init.headers);
    headers.set('authorization', this.authorization);
    try {
      const res = await fetch(`${this.baseUrl}${path}`, { ...init, headers, signal });
      if (!init.probe) this.breaker?.success();
      return res;
    } catch (err) {
      const timedOut = timeout.aborted;
      const reason = timedOut ? `no answer within ${init.timeoutMs ?? this.timeoutMs} ms` : describeFetchError(err);
      // The caller giving up (client gone) says nothing about Orthanc.
      if (!init.probe && (timedOut || !init.signal?.aborted)) this.breaker?.failure(reason);
      throw new OrthancUnavailableError(`Orthanc unavailable: ${reason}`, timedOut, { cause: err });
    }
  }

  async getJson<T>(path: string, opts: { timeoutMs?: number; probe?: boolean } = {}): Promise<T> {
    const res = await this.request(path, { headers: { accept: 'application/json' }, ...opts });
    if (!res.ok) {
      await res.body?.cancel();
      throw new OrthancHttpError(res.status, path);
    }
    return (await res.json()) as T;
  }

  system(opts: { timeoutMs?: number; probe?: boolean } = {}): Promise<OrthancSystem> {
    return this.getJson<OrthancSystem>('/system', opts);
  }

  /**
   * Stores one DICOM Part 10 instance (`POST /instances`). Orthanc answers `Status: "AlreadyStored"` for a
   * duplicate, which is a success. A refusal (bad DICOM, storage full...) throws {@link OrthancHttpError} with
   * Orthanc's message when it gave one.
   *
   * The body may be one buffer or the list of chunks it arrived in; either is written to the socket as is (no copy;
   * `fetch` would copy every body it is given), on a kept-alive connection of {@link OrthancClient.storeAgent}, and
   * without asking for a compressed answer (gunzipping a 200-byte JSON answer per instance costs more than it saves).
   */
  async storeInstance(
    body: Uint8Array | readonly Uint8Array[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<OrthancStoredInstance> {
    const chunks = body instanceof Uint8Array ? [body] : body;
    const res = await this.#post('/instances', chunks, opts.signal);
    if (res.status < 200 || res.status > 299) {
      let detail: string | undefined;
      try {
        const j = JSON.parse(res.text) as { Message?: string; Details?: string; OrthancError?: string };
        detail = [j.OrthancError ?? j.Message, j.Details].filter(Boolean).join(': ') || undefined;
      } catch {
        detail = undefined;
      }
      throw new OrthancHttpError(res.status, '/instances', detail);
    }
    try {
      return JSON.parse(res.text) as OrthancStoredInstance;
    } catch (err) {
      throw new OrthancUnavailableError('Orthanc unavailable: unreadable answer to POST /instances', false, {
        cause: err,
      });
    }
  }

  /**
   * Keep-alive connections for {@link storeInstance}. Orthanc closes an idle connection after the `Keep-Alive:
   * timeout=1` it announces; Node's agent by default keeps a socket only when the hint leaves more than a second
   * (so it would open one connection per instance), here an idle socket is dropped after {@link IDLE_SOCKET_MS}.
   */
  readonly storeAgent: http.Agent;

  /** Closes the idle keep-alive connections (app shutdown). */
  close(): void {
    this.storeAgent.destroy();
  }

  /** A POST with a known-length body written chunk by chunk; one retry when a reused connection was closed under it. */
  async #post(
    path: string,
    chunks: readonly Uint8Array[],
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; text: string }> {
    this.breaker?.check();
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const all = signal ? AbortSignal.any([signal, timeout]) : timeout;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.#postOnce(path, chunks, all);
        this.breaker?.success();
        return res;
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { reusedSocket?: boolean };
        // RFC 9112 §9.3.1: a request sent on a connection the server was closing may be retried on a new one.
        if (attempt === 0 && e.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') && !all.aborted) {
          continue;
        }
        const reason = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : (e.code ?? e.message);
        if (timeout.aborted || !signal?.aborted) this.breaker?.failure(reason);
        throw new OrthancUnavailableError(`Orthanc unavailable: ${reason}`, timeout.aborted, { cause: err });
      }
    }
  }

  #postOnce(
    path: string,
    chunks: readonly Uint8Array[],
    signal: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const url = new URL(`${this.baseUrl}${path}`);
      const length = chunks.reduce((n, c) => n + c.byteLength, 0);
      const req = (url.protocol === 'https:' ? https : http).request(url, {
        method: 'POST',
        agent: this.storeAgent,
        signal,
        headers: {
          authorization: this.authorization,
          'content-type': 'application/dicom',
          accept: 'application/json',
          'content-length': length,
        },
      });
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      });
      // Written before the socket is assigned: Node sends the buffered head and chunks in one writev.
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  /** Deletes an instance (used to undo a store when the EHR could not record it). 404 counts as done. */
  async deleteInstance(orthancId: string): Promise<void> {
    const path = `/instances/${encodeURIComponent(orthancId)}`;
    const res = await this.request(path, { method: 'DELETE' });
    await res.body?.cancel();
    if (!res.ok && res.status !== 404) throw new OrthancHttpError(res.status, path);
  }
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
