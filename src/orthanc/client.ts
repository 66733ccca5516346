import { OrthancHttpError, OrthancUnavailableError } from './errors.ts';

export interface OrthancClientOptions {
  url: string;
  username: string;
  password: string;
  timeoutMs: number;
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

/**
 * Typed client for Orthanc's REST API (https://orthanc.uclouvain.be/api/). The credentials live here and are never
 * forwarded from or to clients of the facade.
 */
export class OrthancClient {
  readonly baseUrl: string;
  readonly authorization: string;
  readonly timeoutMs: number;

  constructor(opts: OrthancClientOptions) {
    this.baseUrl = opts.url.replace(/\/+$/, '');
    this.authorization = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;
    this.timeoutMs = opts.timeoutMs;
  }

  /** Performs a request with credentials and a time-out; network faults become {@link OrthancUnavailableError}. */
  async request(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Response> {
    const timeout = AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const headers = new Headers(init.headers);
    headers.set('authorization', this.authorization);
    try {
      return await fetch(`${this.baseUrl}${path}`, { ...init, headers, signal });
    } catch (err) {
      const timedOut = timeout.aborted;
      const reason = timedOut ? `no answer within ${init.timeoutMs ?? this.timeoutMs} ms` : describeFetchError(err);
      throw new OrthancUnavailableError(`Orthanc unavailable: ${reason}`, timedOut, { cause: err });
    }
  }

  async getJson<T>(path: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    const res = await this.request(path, { headers: { accept: 'application/json' }, ...opts });
    if (!res.ok) {
      await res.body?.cancel();
      throw new OrthancHttpError(res.status, path);
    }
    return (await res.json()) as T;
  }

  system(opts: { timeoutMs?: number } = {}): Promise<OrthancSystem> {
    return this.getJson<OrthancSystem>('/system', opts);
  }

  /**
   * Stores one DICOM Part 10 instance (`POST /instances`). Orthanc answers `Status: "AlreadyStored"` for a
   * duplicate, which is a success. A refusal (bad DICOM, storage full...) throws {@link OrthancHttpError} with
   * Orthanc's message when it gave one.
   */
  async storeInstance(body: Uint8Array, opts: { signal?: AbortSignal } = {}): Promise<OrthancStoredInstance> {
    const res = await this.request('/instances', {
      method: 'POST',
      headers: { 'content-type': 'application/dicom', accept: 'application/json' },
      body,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let detail: string | undefined;
      try {
        const j = JSON.parse(text) as { Message?: string; Details?: string; OrthancError?: string };
        detail = [j.OrthancError ?? j.Message, j.Details].filter(Boolean).join(': ') || undefined;
      } catch {
        detail = undefined;
      }
      throw new OrthancHttpError(res.status, '/instances', detail);
    }
    return (await res.json()) as OrthancStoredInstance;
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
