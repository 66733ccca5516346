/**
 * The error-code table: one stable code per error class, like Fastify's `FST_ERR_*` codes. The code is what logs,
 * tests and clients can match on; the message is for people. `statusCode` is the HTTP status the error answers with
 * (an error that never reaches a client has 500); `varies` means the thrower gives the status (e.g. `FhirError`).
 * A unit test checks that every error class in src/ is here exactly once and renders in every dialect.
 */
export interface ErrorCodeSpec {
  /** The class that carries the code. */
  readonly className: string;
  /** The module that declares it (two CLI modules each have a `UsageError`). */
  readonly module: string;
  /** The HTTP status; the default one when {@link varies}. */
  readonly statusCode: number;
  /** The thrower chooses the status (a range of statuses share one class); its message is meant for the caller. */
  readonly varies?: true;
  /** A 5xx whose message is still meant for the caller (an upstream failure it can act on). */
  readonly expose?: true;
  readonly summary: string;
}

export const ERROR_CODES = {
  EHR_FHIR_ERROR: {
    className: 'FhirError',
    module: 'src/fhir/errors.ts',
    statusCode: 500,
    varies: true,
    summary: 'A FHIR error with the status and OperationOutcome issues it was given.',
  },
  EHR_FHIR_BAD_REQUEST: {
    className: 'BadRequestError',
    module: 'src/fhir/errors.ts',
    statusCode: 400,
    summary: 'Malformed FHIR request: invalid JSON, search value or parameter.',
  },
  EHR_FHIR_STRUCTURE: {
    className: 'StructureError',
    module: 'src/fhir/errors.ts',
    statusCode: 400,
    varies: true,
    summary: "The resource breaks the FHIR structure rules; the validator's issues are the body.",
  },
  EHR_FHIR_UNPROCESSABLE: {
    className: 'UnprocessableError',
    module: 'src/fhir/errors.ts',
    statusCode: 422,
    summary: 'The resource breaks a profile or a business rule (e.g. a dangling reference).',
  },
  EHR_FHIR_FORBIDDEN: {
    className: 'ForbiddenError',
    module: 'src/fhir/errors.ts',
    statusCode: 403,
    summary: "The caller's access context does not allow this FHIR interaction.",
  },
  EHR_FHIR_UNAUTHENTICATED: {
    className: 'UnauthenticatedError',
    module: 'src/fhir/errors.ts',
    statusCode: 401,
    summary: 'No access context: authentication is required.',
  },
  EHR_FHIR_NOT_FOUND: {
    className: 'NotFoundError',
    module: 'src/fhir/errors.ts',
    statusCode: 404,
    summary: 'Unknown resource, or one the caller may not see (indistinguishable on purpose).',
  },
  EHR_FHIR_METHOD_NOT_ALLOWED: {
    className: 'MethodNotAllowedError',
    module: 'src/fhir/errors.ts',
    statusCode: 405,
    summary: 'The interaction is not supported on this path.',
  },
  EHR_FHIR_NOT_ACCEPTABLE: {
    className: 'NotAcceptableError',
    module: 'src/fhir/errors.ts',
    statusCode: 406,
    summary: 'The requested response format is not served (JSON only).',
  },
  EHR_FHIR_CONFLICT: {
    className: 'ConflictError',
    module: 'src/fhir/errors.ts',
    statusCode: 409,
    summary: 'A unique business key already belongs to another resource.',
  },
  EHR_FHIR_GONE: {
    className: 'GoneError',
    module: 'src/fhir/errors.ts',
    statusCode: 410,
    summary: 'The resource was deleted.',
  },
  EHR_FHIR_PRECONDITION_FAILED: {
    className: 'PreconditionFailedError',
    module: 'src/fhir/errors.ts',
    statusCode: 412,
    summary: 'If-Match version conflict, or several matches for a conditional create.',
  },
  EHR_FHIR_UNSUPPORTED_MEDIA_TYPE: {
    className: 'UnsupportedMediaTypeError',
    module: 'src/fhir/errors.ts',
    statusCode: 415,
    summary: 'The request body has a media type that is not read.',
  },
  EHR_FHIR_SUBSET: {
    className: 'SubsetError',
    module: 'src/fhir/r4-subset.ts',
    statusCode: 500,
    summary: 'The committed FHIR R4 subset could not be built or read.',
  },
  EHR_FHIR_NARRATIVE: {
    className: 'NarrativeError',
    module: 'src/fhir/narrative.ts',
    statusCode: 400,
    summary: "A resource's narrative is not acceptable FHIR XHTML.",
  },
  EHR_DICOMWEB_ERROR: {
    className: 'DicomWebError',
    module: 'src/dicomweb/errors.ts',
    statusCode: 500,
    varies: true,
    summary: 'A DICOMweb error with the status it was given.',
  },
  EHR_DICOMWEB_BAD_REQUEST: {
    className: 'BadDicomWebRequestError',
    module: 'src/dicomweb/errors.ts',
    statusCode: 400,
    summary: 'A malformed or unsupported DICOMweb request parameter (PS3.18 \u00a78.3.4).',
  },
  EHR_DICOM_STUDY_NOT_FOUND: {
    className: 'StudyNotFoundError',
    module: 'src/dicomweb/errors.ts',
    statusCode: 404,
    summary: 'Unknown study, or one the caller may not see (indistinguishable on purpose).',
  },
  EHR_DICOMWEB_METADATA_PREFETCH: {
    className: 'MetadataPrefetchError',
    module: 'src/dicomweb/qido/metadata-prefetch.ts',
    statusCode: 502,
    summary: 'A background series-metadata warm-up failed (never sent to a client).',
  },
  EHR_DICOMWEB_STUDY_INDEX_BUSY: {
    className: 'StudyIndexBusyError',
    module: 'src/dicomweb/qido/study-answers-store.ts',
    statusCode: 503,
    summary: 'The QIDO study index is busy; the query goes to Orthanc instead.',
  },
  EHR_DICOMWEB_MULTIPART: {
    className: 'MultipartError',
    module: 'src/dicomweb/stow/multipart-related.ts',
    statusCode: 400,
    summary: 'A multipart request body is malformed.',
  },
  EHR_STOW_STORES_DIFFER: {
    className: 'StoresDiffer',
    module: 'src/dicomweb/stow/record-upload.ts',
    statusCode: 500,
    summary: "Orthanc's stored study differs from what the upload recorded; retried internally.",
  },
  EHR_STOW_INSTANCE_REJECTED: {
    className: 'InstanceRejection',
    module: 'src/dicomweb/stow/outcome.ts',
    statusCode: 409,
    summary: 'One STOW-RS instance failed; reported in FailedSOPSequence with its reason code.',
  },
  EHR_UPLOAD_REQUEST: {
    className: 'UploadRequestError',
    module: 'src/dicomweb/stow/wiring.ts',
    statusCode: 400,
    varies: true,
    summary: 'A whole STOW-RS or upload request is refused (400, 401, 413, 415).',
  },
  EHR_ORTHANC_UNAVAILABLE: {
    className: 'OrthancUnavailableError',
    module: 'src/orthanc/errors.ts',
    statusCode: 502,
    varies: true,
    summary: 'Orthanc could not be reached (502) or did not answer in time (504).',
  },
  EHR_ORTHANC_HTTP: {
    expose: true,
    className: 'OrthancHttpError',
    module: 'src/orthanc/errors.ts',
    statusCode: 502,
    summary: 'Orthanc answered with an unexpected HTTP status (kept in orthancStatus).',
  },
  EHR_ORTHANC_TIMEOUT: {
    className: 'UpstreamTimeout',
    module: 'src/orthanc/proxy.ts',
    statusCode: 504,
    summary: 'A streamed request to Orthanc timed out.',
  },
  EHR_QUEUE_TRANSITION: {
    className: 'QueueTransitionError',
    module: 'src/change-feed/queue-state.ts',
    statusCode: 409,
    summary: 'The reconciliation queue item is in a state that does not allow this action.',
  },
  EHR_QUEUE_ITEM_NOT_FOUND: {
    className: 'QueueItemNotFoundError',
    module: 'src/change-feed/queue.ts',
    statusCode: 404,
    summary: 'No such reconciliation queue item.',
  },
  EHR_QUEUE_REQUEST: {
    className: 'HttpProblem',
    module: 'src/change-feed/routes.ts',
    statusCode: 400,
    varies: true,
    summary: 'A reconciliation queue request is refused (401, 403, 400).',
  },
  EHR_CHANGE_FEED_CURSOR_MOVED: {
    className: 'CursorMovedError',
    module: 'src/change-feed/cursor.ts',
    statusCode: 500,
    summary: 'Another consumer moved the change-feed cursor.',
  },
  EHR_RELINK: {
    expose: true,
    className: 'RelinkError',
    module: 'src/change-feed/relink.ts',
    statusCode: 502,
    summary: 'Moving a study to another patient failed in Orthanc.',
  },
  EHR_CHANGE_FEED_USAGE: {
    className: 'UsageError',
    module: 'src/change-feed/cli.ts',
    statusCode: 400,
    summary: 'Wrong arguments to `bin/ehr unmatched`.',
  },
  EHR_CHANGE_FEED_ORDER: {
    className: 'ChangeFeedOrderError',
    module: 'src/change-feed/classify.ts',
    statusCode: 500,
    summary: "Orthanc's change log went backwards.",
  },
  EHR_RELINK_BUSY: {
    className: 'RelinkBusyError',
    module: 'src/change-feed/resolve.ts',
    statusCode: 409,
    summary: 'The study is being re-linked by another request.',
  },
  EHR_LINK_TARGET: {
    className: 'LinkTargetError',
    module: 'src/change-feed/ports.ts',
    statusCode: 422,
    summary: 'The patient or order to link a study to is not usable.',
  },
  EHR_CHANGE_FEED_STUDY_READ: {
    className: 'StudyReadError',
    module: 'src/change-feed/study-read.ts',
    statusCode: 502,
    summary: 'A study could not be read from Orthanc.',
  },
  EHR_CONFIG: {
    className: 'ConfigError',
    module: 'src/config/load-config.ts',
    statusCode: 500,
    summary: 'A configuration variable is missing or invalid; the process stops.',
  },
  EHR_DEVELOPMENT_ONLY: {
    className: 'DevelopmentOnlyError',
    module: 'src/auth/local-token.ts',
    statusCode: 403,
    summary: 'A development-only feature was used in production mode.',
  },
  EHR_AUTH_INVALID_TOKEN: {
    className: 'TokenError',
    module: 'src/auth/verify-token.ts',
    statusCode: 401,
    summary: 'The bearer token is missing, malformed, expired or not trusted (RFC 6750 \u00a73.1).',
  },
  EHR_AUTH_TOKEN_IN_QUERY: {
    className: 'TokenInQueryError',
    module: 'src/auth/plugin.ts',
    statusCode: 400,
    summary:
      'A bearer token in the query string (RFC 6750 \u00a72.3 is not offered): send it in the Authorization header.',
  },
  EHR_AUTH_PAGE: {
    className: 'AuthPageError',
    module: 'src/auth/server/authorize.ts',
    statusCode: 400,
    summary: 'The authorization page cannot redirect back: the client or redirect URI is invalid.',
  },
  EHR_OAUTH_REDIRECT: {
    className: 'RedirectError',
    module: 'src/auth/server/authorize.ts',
    statusCode: 400,
    varies: true,
    summary: 'An authorization error redirected back to the client (RFC 6749 \u00a74.1.2.1).',
  },
  EHR_OAUTH: {
    className: 'OAuthError',
    module: 'src/auth/server/errors.ts',
    statusCode: 400,
    varies: true,
    summary: 'An OAuth 2.0 error response (RFC 6749 \u00a75.2).',
  },
  EHR_AUTH_CLIENT_SPEC: {
    className: 'ClientSpecError',
    module: 'src/auth/client-admin.ts',
    statusCode: 400,
    summary: 'An OAuth client registration or change is invalid.',
  },
  EHR_AUTH_UNKNOWN_CLIENT: {
    className: 'UnknownClientError',
    module: 'src/auth/client-admin.ts',
    statusCode: 404,
    summary: 'No such OAuth client.',
  },
  EHR_METRICS_LISTEN: {
    className: 'MetricsListenError',
    module: 'src/metrics/listen.ts',
    statusCode: 500,
    summary: 'EHR_METRICS_LISTEN is not a usable host:port.',
  },
  EHR_AUDIT_UNAVAILABLE: {
    expose: true,
    className: 'AuditUnavailableError',
    module: 'src/audit/hold-last.ts',
    statusCode: 503,
    summary: 'The audit event could not be stored, so the answer is withheld.',
  },
  EHR_AUDIT_INVALID_EVENT: {
    className: 'InvalidAuditEventError',
    module: 'src/audit/validate.ts',
    statusCode: 500,
    summary: 'A built AuditEvent breaks the BALP rules.',
  },
  EHR_AUDIT_OUTBOX_LOCKED: {
    className: 'OutboxLockedError',
    module: 'src/audit/outbox.ts',
    statusCode: 500,
    summary: 'The audit outbox directory is used by another process.',
  },
  EHR_AUDIT_OUTBOX_CLOSED: {
    className: 'OutboxClosedError',
    module: 'src/audit/outbox.ts',
    statusCode: 503,
    summary: 'The audit outbox is closed.',
  },
  EHR_AUDIT_SEARCH: {
    className: 'AuditSearchError',
    module: 'src/audit/search.ts',
    statusCode: 400,
    summary: 'An AuditEvent search parameter is invalid.',
  },
  EHR_AUDIT_OUTBOX_CORRUPT: {
    className: 'OutboxCorruptError',
    module: 'src/audit/outbox-segment.ts',
    statusCode: 500,
    summary: 'An audit outbox segment is corrupt.',
  },
  EHR_AUDIT_USAGE: {
    className: 'AuditUsageError',
    module: 'src/audit/cli.ts',
    statusCode: 400,
    summary: 'Wrong arguments to `bin/ehr audit`.',
  },
  EHR_AUDIT_APPEND: {
    className: 'AuditAppendError',
    module: 'src/audit/store.ts',
    statusCode: 500,
    summary: 'Audit events could not be appended to the hash chain.',
  },
  EHR_AUDIT_GROUP_COMMIT_CLOSED: {
    className: 'GroupCommitClosedError',
    module: 'src/audit/group-commit.ts',
    statusCode: 503,
    summary: 'The audit group commit is closed.',
  },
  EHR_AUDIT_GROUP_COMMIT_RESULT: {
    className: 'GroupCommitResultError',
    module: 'src/audit/group-commit.ts',
    statusCode: 500,
    summary: 'A group commit returned an unexpected result.',
  },
  EHR_ADMIN_REQUEST: {
    className: 'AdminRequestError',
    module: 'src/api/admin-routes.ts',
    statusCode: 400,
    varies: true,
    summary: 'An admin API request is refused.',
  },
  EHR_ORDER_CHANGED: {
    className: 'OrderChangedError',
    module: 'src/imaging/ehr-link.ts',
    statusCode: 409,
    summary: 'The order changed while a study was being linked to it.',
  },
  EHR_DICOM_READ: {
    className: 'DicomReadError',
    module: 'src/imaging/dicom-instance.ts',
    statusCode: 400,
    summary: 'The data is not a readable DICOM instance.',
  },
  EHR_DICOM_ATTRIBUTE: {
    className: 'DicomAttributeError',
    module: 'src/imaging/dicom-instance.ts',
    statusCode: 400,
    summary: 'A required DICOM attribute is missing or invalid.',
  },
  EHR_DICOM_TRANSFER_SYNTAX: {
    className: 'UnsupportedTransferSyntaxError',
    module: 'src/imaging/dicom-instance.ts',
    statusCode: 415,
    summary: "The instance's transfer syntax is not supported.",
  },
  EHR_STACK: {
    className: 'StackError',
    module: 'src/stack/process.ts',
    statusCode: 500,
    summary: 'The local stack (PostgreSQL, Orthanc) could not be started or stopped.',
  },
  EHR_DEMO: {
    className: 'DemoError',
    module: 'src/cli/demo.ts',
    statusCode: 500,
    summary: '`bin/ehr demo` could not set up its data.',
  },
  EHR_CLI_USAGE: {
    className: 'UsageError',
    module: 'src/cli/auth-command.ts',
    statusCode: 400,
    summary: 'Wrong arguments to a `bin/ehr` auth command.',
  },
  EHR_BACKEND_AUTH: {
    className: 'BackendAuthError',
    module: 'src/cli/backend-token.ts',
    statusCode: 401,
    summary: 'A backend-services token could not be obtained (SMART Backend Services).',
  },
  EHR_UPLOAD_USAGE: {
    className: 'UploadUsageError',
    module: 'src/cli/upload-command.ts',
    statusCode: 400,
    summary: 'Wrong arguments to `bin/ehr upload`.',
  },
  EHR_DEPENDENCY_UNAVAILABLE: {
    className: 'DependencyUnavailableError',
    module: 'src/resilience/circuit-breaker.ts',
    statusCode: 503,
    summary: 'Orthanc or the database is down (circuit breaker open); retry after Retry-After.',
  },
  EHR_DB_INVALID_CHANNEL: {
    className: 'InvalidChannelError',
    module: 'src/db/notify-listener.ts',
    statusCode: 500,
    summary: 'A LISTEN channel name is not a plain identifier.',
  },
  EHR_VIEWER_SESSION: {
    className: 'ViewerSessionError',
    module: 'src/viewer/renew.ts',
    statusCode: 401,
    varies: true,
    summary: 'A viewer session cannot go on: revoked, idle, already renewed, or the study is not available (401, 404).',
  },
  EHR_USER_SPEC: {
    className: 'UserSpecError',
    module: 'src/auth/user-admin.ts',
    statusCode: 400,
    varies: true,
    summary: 'A user change breaks a rule of user accounts, e.g. a patient login without its patient (400, 422).',
  },
  EHR_STUDY_ARCHIVE: {
    className: 'StudyArchiveError',
    module: 'src/api/study-archive.ts',
    statusCode: 404,
    varies: true,
    summary: 'A study archive download is refused: bad parameters (400), or a study the caller may not read (404).',
  },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;
