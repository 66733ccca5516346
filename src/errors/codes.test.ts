import { ViewerSessionError } from '../viewer/renew.ts';
import { TokenInQueryError } from '../auth/plugin.ts';
import { UserSpecError } from '../auth/user-admin.ts';
import { StudyArchiveError } from '../api/study-archive.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { AdminRequestError } from '../api/admin-routes.ts';
import { AuditUsageError } from '../audit/cli.ts';
import { GroupCommitClosedError, GroupCommitResultError } from '../audit/group-commit.ts';
import { AuditUnavailableError } from '../audit/hold-last.ts';
import { OutboxClosedError, OutboxLockedError } from '../audit/outbox.ts';
import { OutboxCorruptError } from '../audit/outbox-segment.ts';
import { AuditSearchError } from '../audit/search.ts';
import { AuditAppendError } from '../audit/store.ts';
import { InvalidAuditEventError } from '../audit/validate.ts';
import { ClientSpecError, UnknownClientError } from '../auth/client-admin.ts';
import { DevelopmentOnlyError } from '../auth/local-token.ts';
import { AuthPageError, RedirectError } from '../auth/server/authorize.ts';
import { OAuthError } from '../auth/server/errors.ts';
import { TokenError } from '../auth/verify-token.ts';
import { ChangeFeedOrderError } from '../change-feed/classify.ts';
import { UsageError as UnmatchedUsageError } from '../change-feed/cli.ts';
import { CursorMovedError } from '../change-feed/cursor.ts';
import { LinkTargetError } from '../change-feed/ports.ts';
import { QueueItemNotFoundError } from '../change-feed/queue.ts';
import { QueueTransitionError } from '../change-feed/queue-state.ts';
import { RelinkError } from '../change-feed/relink.ts';
import { RelinkBusyError } from '../change-feed/resolve.ts';
import { HttpProblem } from '../change-feed/routes.ts';
import { StudyReadError } from '../change-feed/study-read.ts';
import { UsageError as AuthUsageError } from '../cli/auth-command.ts';
import { BackendAuthError } from '../cli/backend-token.ts';
import { DemoError } from '../cli/demo.ts';
import { UploadUsageError } from '../cli/upload-command.ts';
import { ConfigError } from '../config/load-config.ts';
import { InvalidChannelError } from '../db/notify-listener.ts';
import { BadDicomWebRequestError, DicomWebError, StudyNotFoundError } from '../dicomweb/errors.ts';
import { MetadataPrefetchError } from '../dicomweb/qido/metadata-prefetch.ts';
import { MultipartError } from '../dicomweb/stow/multipart-related.ts';
import { StudyIndexBusyError } from '../dicomweb/qido/study-answers-store.ts';
import { UploadRequestError } from '../dicomweb/stow/wiring.ts';
import { FailureReason, InstanceRejection } from '../dicomweb/stow/outcome.ts';
import { StoresDiffer } from '../dicomweb/stow/record-upload.ts';
import {
  BadRequestError,
  ConflictError,
  FhirError,
  ForbiddenError,
  GoneError,
  MethodNotAllowedError,
  NotAcceptableError,
  NotFoundError,
  PreconditionFailedError,
  StructureError,
  UnauthenticatedError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} from '../fhir/errors.ts';
import { NarrativeError } from '../fhir/narrative.ts';
import { SubsetError } from '../fhir/r4-subset.ts';
import { DependencyUnavailableError } from '../resilience/circuit-breaker.ts';
import { DicomAttributeError, DicomReadError, UnsupportedTransferSyntaxError } from '../imaging/dicom-instance.ts';
import { OrderChangedError } from '../imaging/ehr-link.ts';
import { MetricsListenError } from '../metrics/listen.ts';
import { OrthancHttpError, OrthancUnavailableError } from '../orthanc/errors.ts';
import { UpstreamTimeout } from '../orthanc/proxy.ts';
import { StackError } from '../stack/process.ts';
import { EhrError } from './base.ts';
import { ERROR_CODES, type ErrorCode, type ErrorCodeSpec } from './codes.ts';
import { renderDicom, renderFhir, renderJson, renderOAuth } from './render.ts';

/** One instance of every class in the table, with the status a thrower gives where the class lets it choose. */
const SAMPLES: Record<ErrorCode, () => EhrError> = {
  EHR_FHIR_ERROR: () => new FhirError(409, 'conflict', 'version conflict'),
  EHR_FHIR_BAD_REQUEST: () => new BadRequestError('invalid search value'),
  EHR_FHIR_STRUCTURE: () => new StructureError([{ severity: 'error', code: 'structure', diagnostics: 'bad' }]),
  EHR_FHIR_UNPROCESSABLE: () => new UnprocessableError('dangling reference'),
  EHR_FHIR_FORBIDDEN: () => new ForbiddenError(),
  EHR_FHIR_UNAUTHENTICATED: () => new UnauthenticatedError(),
  EHR_FHIR_NOT_FOUND: () => new NotFoundError(),
  EHR_FHIR_METHOD_NOT_ALLOWED: () => new MethodNotAllowedError('no PATCH here'),
  EHR_FHIR_NOT_ACCEPTABLE: () => new NotAcceptableError('xml'),
  EHR_FHIR_CONFLICT: () => new ConflictError('MRN taken'),
  EHR_FHIR_GONE: () => new GoneError(),
  EHR_FHIR_PRECONDITION_FAILED: () => new PreconditionFailedError('version mismatch'),
  EHR_FHIR_UNSUPPORTED_MEDIA_TYPE: () => new UnsupportedMediaTypeError('text/plain'),
  EHR_FHIR_SUBSET: () => new SubsetError('subset missing'),
  EHR_FHIR_NARRATIVE: () => new NarrativeError('script element'),
  EHR_DICOMWEB_ERROR: () => new DicomWebError(406, 'not acceptable'),
  EHR_DICOMWEB_BAD_REQUEST: () => new BadDicomWebRequestError('limit must be an integer'),
  EHR_DICOM_STUDY_NOT_FOUND: () => new StudyNotFoundError(),
  EHR_DICOMWEB_METADATA_PREFETCH: () => new MetadataPrefetchError('warm-up failed'),
  EHR_DICOMWEB_STUDY_INDEX_BUSY: () => new StudyIndexBusyError('busy'),
  EHR_DICOMWEB_MULTIPART: () => new MultipartError('no boundary'),
  EHR_STOW_STORES_DIFFER: () => new StoresDiffer('stores differ'),
  EHR_STOW_INSTANCE_REJECTED: () => new InstanceRejection(FailureReason.ProcessingFailure, 'not DICOM'),
  EHR_UPLOAD_REQUEST: () => new UploadRequestError(415, 'send multipart/form-data'),
  EHR_AUTH_TOKEN_IN_QUERY: () => new TokenInQueryError(),
  EHR_VIEWER_SESSION: () => new ViewerSessionError(404, 'study_not_available', 'not filed under this patient'),
  EHR_USER_SPEC: () => new UserSpecError(422, 'a patient login needs the patient it stands for'),
  EHR_STUDY_ARCHIVE: () => new StudyArchiveError(400, 'unknown format'),
  EHR_ORTHANC_UNAVAILABLE: () => new OrthancUnavailableError('image archive unavailable: ECONNREFUSED', false),
  EHR_ORTHANC_HTTP: () => new OrthancHttpError(404, '/studies/x'),
  EHR_ORTHANC_TIMEOUT: () => new UpstreamTimeout('no answer'),
  EHR_QUEUE_TRANSITION: () => new QueueTransitionError('linked', 'reject'),
  EHR_QUEUE_ITEM_NOT_FOUND: () => new QueueItemNotFoundError('no such item'),
  EHR_QUEUE_REQUEST: () => new HttpProblem(403, 'not allowed'),
  EHR_CHANGE_FEED_CURSOR_MOVED: () => new CursorMovedError(1, 2),
  EHR_RELINK: () => new RelinkError('Orthanc refused the modification'),
  EHR_CHANGE_FEED_USAGE: () => new UnmatchedUsageError('unknown command'),
  EHR_CHANGE_FEED_ORDER: () => new ChangeFeedOrderError('went backwards'),
  EHR_RELINK_BUSY: () => new RelinkBusyError('busy'),
  EHR_LINK_TARGET: () => new LinkTargetError('no such order'),
  EHR_CHANGE_FEED_STUDY_READ: () => new StudyReadError('unreadable'),
  EHR_CONFIG: () => new ConfigError('EHR_PORT', 'is invalid'),
  EHR_DEVELOPMENT_ONLY: () => new DevelopmentOnlyError('development only'),
  EHR_AUTH_INVALID_TOKEN: () => new TokenError('token expired'),
  EHR_AUTH_PAGE: () => new AuthPageError('unknown client'),
  EHR_OAUTH_REDIRECT: () => new RedirectError('access_denied', 'denied', 'https://app/cb', 'xyz'),
  EHR_OAUTH: () => new OAuthError('invalid_grant', 'code already used'),
  EHR_AUTH_CLIENT_SPEC: () => new ClientSpecError('bad redirect URI'),
  EHR_AUTH_UNKNOWN_CLIENT: () => new UnknownClientError('no such client'),
  EHR_METRICS_LISTEN: () => new MetricsListenError('bad host:port'),
  EHR_AUDIT_UNAVAILABLE: () => new AuditUnavailableError('req-1'),
  EHR_AUDIT_INVALID_EVENT: () => new InvalidAuditEventError([{ severity: 'error', code: 'required' }]),
  EHR_AUDIT_OUTBOX_LOCKED: () => new OutboxLockedError('/tmp/outbox', 42),
  EHR_AUDIT_OUTBOX_CLOSED: () => new OutboxClosedError(),
  EHR_AUDIT_SEARCH: () => new AuditSearchError('unknown parameter'),
  EHR_AUDIT_OUTBOX_CORRUPT: () => new OutboxCorruptError(3, 'bad checksum'),
  EHR_AUDIT_USAGE: () => new AuditUsageError('unknown command'),
  EHR_AUDIT_APPEND: () => new AuditAppendError(3, 2),
  EHR_AUDIT_GROUP_COMMIT_CLOSED: () => new GroupCommitClosedError(),
  EHR_AUDIT_GROUP_COMMIT_RESULT: () => new GroupCommitResultError(3, 2),
  EHR_ADMIN_REQUEST: () => new AdminRequestError(409, 'user exists'),
  EHR_ORDER_CHANGED: () => new OrderChangedError('order changed'),
  EHR_DICOM_READ: () => new DicomReadError('not DICOM'),
  EHR_DICOM_ATTRIBUTE: () => new DicomAttributeError('missing PatientID', ['PatientID']),
  EHR_DICOM_TRANSFER_SYNTAX: () => new UnsupportedTransferSyntaxError('1.2.3'),
  EHR_STACK: () => new StackError('postgres did not start'),
  EHR_DEMO: () => new DemoError('no data'),
  EHR_CLI_USAGE: () => new AuthUsageError('unknown command'),
  EHR_BACKEND_AUTH: () => new BackendAuthError('token endpoint refused'),
  EHR_UPLOAD_USAGE: () => new UploadUsageError('no files'),
  EHR_DEPENDENCY_UNAVAILABLE: () => new DependencyUnavailableError('database', 3, 'connection refused'),
  EHR_DB_INVALID_CHANNEL: () => new InvalidChannelError('bad channel'),
};

/** The statuses the thrower chose in {@link SAMPLES} (classes marked `varies`). */
const CHOSEN: Partial<Record<ErrorCode, number>> = {
  EHR_FHIR_ERROR: 409,
  EHR_DICOMWEB_ERROR: 406,
  EHR_UPLOAD_REQUEST: 415,
  EHR_VIEWER_SESSION: 404,
  EHR_USER_SPEC: 422,
  EHR_STUDY_ARCHIVE: 400,
  EHR_QUEUE_REQUEST: 403,
  EHR_ADMIN_REQUEST: 409,
};

const rows = Object.entries(ERROR_CODES).map(([code, spec]: [string, ErrorCodeSpec]) => ({
  code: code as ErrorCode,
  ...spec,
}));

describe('the error-code table', () => {
  test('codes follow EHR_UPPER_SNAKE and each names a distinct class', () => {
    for (const r of rows) expect(r.code).toMatch(/^EHR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
    const classes = rows.map((r) => `${r.module}#${r.className}`);
    expect(new Set(classes).size).toBe(classes.length);
  });

  test('every error class in src/ has exactly one row, and every row names a class that exists', () => {
    const root = new URL('../..', import.meta.url).pathname;
    const found: string[] = [];
    const names = new Set(rows.map((r) => r.className as string));
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (p !== join(root, 'src', 'errors')) walk(p);
        } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
          const text = readFileSync(p, 'utf8');
          for (const m of text.matchAll(/class (\w+) extends (\w+)/g)) {
            if (m[2] === 'Error') throw new Error(`${relative(root, p)}: ${m[1]} extends Error, not EhrError`);
            if (m[2] === 'EhrError' || names.has(m[2]!)) found.push(`${relative(root, p)}#${m[1]}`);
          }
        }
      }
    };
    walk(join(root, 'src'));
    const tabled = rows.map((r) => `${r.module}#${r.className}`);
    expect(found.sort()).toEqual([...tabled].sort());
  });

  test.each(rows)('$code: $className answers $statusCode', (row) => {
    const err = SAMPLES[row.code]();
    expect(err).toBeInstanceOf(EhrError);
    expect(err.constructor.name).toBe(row.className);
    expect(err.code).toBe(row.code);
    expect(err.statusCode).toBe(CHOSEN[row.code] ?? row.statusCode);
  });
});

describe.each(rows)('$code renders in every dialect', (row) => {
  const err = SAMPLES[row.code]();
  // What the caller sees: the error's own status and reason, or a generic 500 for an internal fault.
  const exposed =
    err.statusCode < 500 || row.varies === true || row.expose === true || row.code === 'EHR_DEPENDENCY_UNAVAILABLE';
  const status = exposed ? err.statusCode : 500;

  test('FHIR: an OperationOutcome with the status, never a stack', () => {
    const r = renderFhir(err, 'req-1');
    expect(r.statusCode).toBe(status);
    expect(r.body.resourceType).toBe('OperationOutcome');
    expect(r.body.issue.length).toBeGreaterThan(0);
    expect(JSON.stringify(r.body)).not.toMatch(/\bat .*\.ts:\d+/);
    if (!exposed) expect(r.body.issue[0]?.diagnostics).toBe('internal error; request id req-1');
  });

  test('DICOM: ErrorComment and the same reason in a printable Warning header', () => {
    const r = renderDicom(err);
    expect(r.statusCode).toBe(status);
    expect(r.headers['content-type']).toBe('application/dicom+json');
    const comment = JSON.parse(r.body)['00000902'];
    expect(comment.vr).toBe('LO');
    expect(r.headers['warning']).toMatch(/^299 - "[\x20-\x7e]*"$/);
    if (!exposed) expect(comment.Value).toEqual(['Internal error']);
  });

  test('OAuth: an RFC 6749 error object', () => {
    const r = renderOAuth(err);
    expect(Object.keys(r.body).sort()).toEqual(['error', 'error_description']);
    if (err instanceof OAuthError) expect(r.body.error).toBe(err.error);
    else if (err instanceof TokenError) expect([r.statusCode, r.body.error]).toEqual([401, 'invalid_token']);
    else if (status < 500) expect([r.statusCode, r.body.error]).toEqual([status, 'invalid_request']);
    else expect([r.statusCode, r.body]).toEqual([500, { error: 'server_error', error_description: 'internal error' }]);
  });

  test('plain JSON: { error, code, requestId }', () => {
    const r = renderJson(err, 'req-1');
    expect(r.statusCode).toBe(status);
    expect(r.body).toEqual({
      error: exposed ? expect.any(String) : 'internal error',
      code: exposed ? row.code : 'EHR_INTERNAL',
      requestId: 'req-1',
    });
  });
});
