/**
 * The app's only ways out: /fhir through fhirclient, /dicom-web and /api/v1 with the user's own access token
 * (RFC 6750 bearer). No other back end.
 */
import type Client from 'fhirclient/lib/Client';

/** A refused or failed call, with what the server said in words. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let current: Client | undefined;

export function setClient(c: Client | undefined): void {
  current = c;
}

export function client(): Client {
  if (!current) throw new ApiError(401, 'not signed in');
  return current;
}

/** The current access token (refreshed first by fhirclient when it has expired and a refresh token exists). */
export async function accessToken(): Promise<string> {
  const c = client();
  if (c.getState('expiresAt') && (c.getState('expiresAt') as number) - 10 < Date.now() / 1000) {
    await c.refreshIfNeeded();
  }
  const t = c.getState('tokenResponse.access_token') as string | undefined;
  if (!t) throw new ApiError(401, 'not signed in');
  return t;
}

function messageOf(status: number, body: string): string {
  try {
    const j = JSON.parse(body) as {
      error?: string;
      error_description?: string;
      issue?: { diagnostics?: string; details?: { text?: string } }[];
    };
    const issue = j.issue?.[0];
    return issue?.diagnostics ?? issue?.details?.text ?? j.error_description ?? j.error ?? `HTTP ${status}`;
  } catch {
    return body.slice(0, 200) || `HTTP ${status}`;
  }
}

/** A FHIR call (path relative to /fhir). Errors carry the OperationOutcome's text. */
export async function fhir<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const token = await accessToken();
  const res = await fetch(`/fhir/${path}`, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/fhir+json',
      ...(init.body === undefined ? {} : { 'content-type': 'application/fhir+json' }),
    },
    body: init.body === undefined ? null : JSON.stringify(init.body),
  });
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, messageOf(res.status, text));
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A JSON call under /api/v1 (or any same-origin path). */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const token = await accessToken();
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? null : JSON.stringify(init.body),
  });
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, messageOf(res.status, text));
  return (text ? JSON.parse(text) : undefined) as T;
}

export interface Bundle<T> {
  total?: number;
  entry?: { resource?: T; search?: { mode?: string } }[];
  link?: { relation: string; url: string }[];
}

export function resources<T>(b: Bundle<T>): T[] {
  return (b.entry ?? []).map((e) => e.resource).filter((r): r is T => r !== undefined);
}
