/**
 * One renderer per error dialect, each taking any thrown value: the scopes' error handlers only pick the dialect and
 * send what comes back. Every renderer starts from {@link describeError}, so a given error has the same status and
 * reason in every API; what differs is the shape:
 *
 * - `fhir`: an OperationOutcome (https://hl7.org/fhir/R4/http.html#summary);
 * - `dicom`: DICOM JSON with ErrorComment (0000,0902) and the reason in a `Warning` header (PS3.18 §8.3.4);
 *   STOW-RS refusals of single instances are FailedSOPSequence items built by stow-response.ts, not errors;
 * - `oauth`: an RFC 6749 §5.2 error object (`error`, `error_description`), or RFC 6750 §3.1 for bearer tokens;
 * - `json`: `{ error, code, requestId }` for the facade's own REST API.
 *
 * Pure: no Fastify; a handler passes the result to {@link sendRendered}. Never a stack trace: an error whose message
 * is not meant for callers (an unexpected 5xx) becomes a generic 500.
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { EhrError } from './base.ts';
import { ERROR_CODES, type ErrorCodeSpec } from './codes.ts';
import { isDatabaseFault } from './database-fault.ts';

type IssueCode = OperationOutcomeIssue['code'];

/**
 * What the renderers read of particular error classes, by their code: this module stays a leaf that every other module
 * may import, so it knows the classes by their codes and fields, never by importing them.
 */
const hasCode = (err: unknown, code: string): err is EhrError => err instanceof EhrError && err.code === code;

/** A FHIR error (src/fhir/errors.ts) carries its OperationOutcome. */
function outcomeOf(err: unknown): OperationOutcome | undefined {
  const o = err instanceof EhrError ? (err as { outcome?: unknown }).outcome : undefined;
  return typeof o === 'function' ? (o.call(err) as OperationOutcome) : undefined;
}

/** The OperationOutcome of an unexpected error: no detail, only the request id to find it in the log. */
export function internalErrorOutcome(requestId: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: 'exception', diagnostics: `internal error; request id ${requestId}` }],
  };
}

export type ErrorDialect = 'fhir' | 'dicom' | 'oauth' | 'json';

/** What any thrown value means for a caller. */
export interface ErrorView {
  readonly statusCode: number;
  /** An `EHR_*` code from codes.ts, Fastify's `FST_*` code, or `EHR_INTERNAL`. */
  readonly code: string;
  /** The reason shown to the caller (for an unexposed error, a generic text). */
  readonly message: string;
  /** Seconds for `Retry-After` (RFC 9110 §10.2.3), when retrying later may succeed. */
  readonly retryAfter?: number;
  /** Whether the message is meant for the caller; false for an unexpected error (answered as a generic 500). */
  readonly exposed: boolean;
}

export interface Rendered<B = unknown> {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: B;
  readonly view: ErrorView;
}

export const INTERNAL_CODE = 'EHR_INTERNAL';
const DB_RETRY_AFTER_S = 5;

const unavailable = (what: 'orthanc' | 'database') =>
  `${what === 'orthanc' ? 'The image archive' : 'The EHR database'} is unavailable; retry later`;

/**
 * Maps any error to a status and a readable reason. A dependency known to be down (its circuit breaker is open) or
 * just gone gives 503 with `Retry-After` (RFC 9110 §15.6.4); Orthanc unreachable or too slow gives 502 or 504.
 */
export function describeError(err: unknown): ErrorView {
  const dependency = 'EHR_DEPENDENCY_UNAVAILABLE';
  if (hasCode(err, dependency)) {
    const { dependency: which, retryAfterSeconds } = err as EhrError & {
      dependency?: string;
      retryAfterSeconds?: number;
    };
    return {
      statusCode: 503,
      code: dependency,
      message: unavailable(which === 'orthanc' ? 'orthanc' : 'database'),
      ...(retryAfterSeconds === undefined ? {} : { retryAfter: retryAfterSeconds }),
      exposed: true,
    };
  }
  if (hasCode(err, 'EHR_ORTHANC_UNAVAILABLE')) {
    const timedOut = (err as EhrError & { timedOut?: boolean }).timedOut === true;
    const message = timedOut ? 'The image archive did not answer in time' : 'The image archive is unavailable';
    return { statusCode: err.statusCode, code: err.code, message, exposed: true };
  }
  // Checked after Orthanc's errors: a refused connection to Orthanc has the same error code in its cause.
  if (isDatabaseFault(err)) {
    const message = unavailable('database');
    return { statusCode: 503, code: dependency, message, retryAfter: DB_RETRY_AFTER_S, exposed: true };
  }
  if (err instanceof EhrError) {
    const spec: ErrorCodeSpec = ERROR_CODES[err.code];
    if (err.statusCode < 500 || spec.varies || spec.expose) {
      const retryAfter = err.statusCode === 503 ? DB_RETRY_AFTER_S : undefined;
      return { statusCode: err.statusCode, code: err.code, message: err.message, exposed: true, retryAfter };
    }
  } else {
    const fe = err as { statusCode?: unknown; code?: unknown; message?: unknown } | null | undefined;
    if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      const message = typeof fe.message === 'string' && fe.message ? fe.message : 'Bad request';
      const code = typeof fe.code === 'string' ? fe.code : INTERNAL_CODE;
      return { statusCode: fe.statusCode, code, message, exposed: true };
    }
  }
  return { statusCode: 500, code: INTERNAL_CODE, message: 'internal error', exposed: false };
}

const withRetry = (view: ErrorView, headers: Record<string, string> = {}): Record<string, string> =>
  view.retryAfter === undefined ? headers : { ...headers, 'retry-after': String(view.retryAfter) };

/** Issue types for statuses without a FHIR error class (https://hl7.org/fhir/R4/valueset-issue-type.html). */
const ISSUE_BY_STATUS: Record<number, IssueCode> = { 400: 'invalid', 413: 'too-long', 415: 'not-supported' };

/** FHIR: an OperationOutcome. `bodyLimit` names the limit in a 413's diagnostics. */
export function renderFhir(
  err: unknown,
  requestId: string,
  opts: { bodyLimit?: number } = {},
): Rendered<OperationOutcome> {
  const view = describeError(err);
  const headers = withRetry(view);
  const outcome = outcomeOf(err);
  if (outcome && err instanceof EhrError) return { statusCode: err.statusCode, headers, body: outcome, view };
  if (!view.exposed) return { statusCode: 500, headers, body: internalErrorOutcome(requestId), view };
  const issue: IssueCode = view.statusCode >= 500 ? 'transient' : (ISSUE_BY_STATUS[view.statusCode] ?? 'processing');
  const message =
    view.statusCode === 413 && opts.bodyLimit !== undefined ? `body larger than ${opts.bodyLimit} bytes` : view.message;
  const body: OperationOutcome = {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: issue, diagnostics: message }],
  };
  return { statusCode: view.statusCode, headers, body, view };
}

/** RFC 9110 §5.5 `Warning: 299 - "text"`: printable ASCII only, quotes and backslashes as quoted-pairs, capped. */
export function warningHeader(text: string): string {
  const clean = text
    .replace(/[^\x20-\x7e]/g, '?')
    .replace(/[\\"]/g, '\\$&')
    .slice(0, 400);
  return `299 - "${clean}"`;
}

/** The DICOM JSON error body: ErrorComment (0000,0902) carrying the human-readable reason. */
export function dicomErrorBody(message: string): string {
  return JSON.stringify({ '00000902': { vr: 'LO', Value: [message] } });
}

/** DICOMweb: `application/dicom+json` ErrorComment, and the reason in a `Warning` header (PS3.18 §8.3.4). */
export function renderDicom(err: unknown): Rendered<string> {
  const view = describeError(err);
  const message = view.exposed ? view.message : 'Internal error';
  const headers = withRetry(view, { 'content-type': 'application/dicom+json', warning: warningHeader(message) });
  return { statusCode: view.statusCode, headers, body: dicomErrorBody(message), view };
}

/** A DICOM-shaped answer for a status and reason that are not a thrown error (e.g. the scope's 404). */
export function renderDicomStatus(statusCode: number, message: string): Rendered<string> {
  const view: ErrorView = { statusCode, code: INTERNAL_CODE, message, exposed: true };
  const headers = { 'content-type': 'application/dicom+json', warning: warningHeader(message) };
  return { statusCode, headers, body: dicomErrorBody(message), view };
}

export interface OAuthErrorBody {
  error: string;
  error_description: string;
}

/**
 * OAuth: an RFC 6749 §5.2 error object, never cached; `invalid_client` with `WWW-Authenticate` (§5.2), a bearer token
 * refusal as RFC 6750 §3.1 `invalid_token`; any other 4xx is `invalid_request`, anything else `server_error`.
 */
export function renderOAuth(err: unknown): Rendered<OAuthErrorBody> {
  const view = describeError(err);
  // OAuthError and its subclasses (src/auth/server/errors.ts): an `EHR_OAUTH*` code and the RFC 6749 `error` value.
  if (
    err instanceof EhrError &&
    err.code.startsWith('EHR_OAUTH') &&
    typeof (err as { error?: unknown }).error === 'string'
  ) {
    const headers: Record<string, string> = { 'cache-control': 'no-store' };
    if (err.statusCode === 401) headers['www-authenticate'] = 'Bearer error="invalid_client"';
    const { error } = err as EhrError & { error: string };
    return { statusCode: err.statusCode, headers, body: { error, error_description: err.message }, view };
  }
  if (hasCode(err, 'EHR_AUTH_INVALID_TOKEN')) {
    const headers = { 'www-authenticate': `Bearer error="invalid_token", error_description="${err.message}"` };
    return { statusCode: 401, headers, body: { error: 'invalid_token', error_description: err.message }, view };
  }
  if (view.exposed && view.statusCode < 500) {
    return {
      statusCode: view.statusCode,
      headers: {},
      body: { error: 'invalid_request', error_description: view.message },
      view,
    };
  }
  return { statusCode: 500, headers: {}, body: { error: 'server_error', error_description: 'internal error' }, view };
}

export interface JsonErrorBody {
  error: string;
  code: string;
  requestId: string;
}

/** The facade's own REST API: `{ error, code, requestId }` (the request id is also the `X-Request-Id` header). */
export function renderJson(err: unknown, requestId: string): Rendered<JsonErrorBody> {
  const view = describeError(err);
  return {
    statusCode: view.statusCode,
    headers: withRetry(view),
    body: { error: view.message, code: view.code, requestId },
    view,
  };
}

/** Renders `err` in `dialect`. */
export function renderError(dialect: ErrorDialect, err: unknown, requestId: string): Rendered {
  switch (dialect) {
    case 'fhir':
      return renderFhir(err, requestId);
    case 'dicom':
      return renderDicom(err);
    case 'oauth':
      return renderOAuth(err);
    case 'json':
      return renderJson(err, requestId);
  }
}

/** The part of a reply {@link sendRendered} uses (Fastify's reply has it). */
export interface ReplyLike<R> {
  code(statusCode: number): R;
  header(name: string, value: string): R;
  send(body: unknown): R;
}

/** Sends a rendered error: status, headers, body. */
export function sendRendered<R extends ReplyLike<R>>(reply: R, rendered: Rendered): R {
  reply.code(rendered.statusCode);
  for (const [name, value] of Object.entries(rendered.headers)) reply.header(name, value);
  return reply.send(rendered.body);
}
