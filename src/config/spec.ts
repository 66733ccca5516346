/**
 * The one description of the facade's configuration: every environment variable, its type, default and meaning.
 * The JSON schema used for validation, the table of docs/configuration.md and the compose checks are all derived
 * from this list, so there is no second hand-written copy to drift.
 */
export interface ConfigVar {
  /** Environment variable name. */
  readonly env: string;
  /** Key in the resulting {@link Config} object. */
  readonly key: keyof Config;
  readonly schema: Record<string, unknown>;
  /** Development default. `undefined` means the variable is required. */
  readonly default?: string | number | boolean;
  /** A secret: may also be given as `<ENV>_FILE` pointing at a file; never logged. */
  readonly secret?: boolean;
  readonly description: string;
}

export type Mode = 'development' | 'production';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  mode: Mode;
  host: string;
  port: number;
  trustProxy: boolean;
  publicBaseUrl: string;
  databaseUrl: string;
  databasePoolSize: number;
  migrateOnStart: boolean;
  orthancUrl: string;
  orthancUsername: string;
  orthancPassword: string;
  orthancDicomWebRoot: string;
  upstreamTimeoutMs: number;
  readyTimeoutMs: number;
  breakerRetryMs: number;
  breakerMaxRetryMs: number;
  breakerHeartbeatMs: number;
  breakerProbeTimeoutMs: number;
  logLevel: LogLevel;
  metricsListen: string;
  auditRetentionDays: number;
  auditBatchMax: number;
  auditBatchWaitMs: number;
  auditOutboxDir: string;
  auditSpillDir: string;
  auditOutboxShipMs: number;
  auditTransferWindowS: number;
  stowMaxInstanceBytes: number;
  stowMaxRequestBytes: number;
  stowUnmatched: 'reject' | 'hold';
  stowDemographicsMismatch: 'hold' | 'refuse';
  stowOrthancConcurrency: number;
  dicomwebEndpointId: string;
  fhirMrnSystem: string;
  fhirMrnFormat: string;
  fhirAccessionSystem: string;
  fhirAccessionFormat: string;
  fhirDefaultCount: number;
  fhirMaxCount: number;
  fhirMaxBodyBytes: number;
  fhirMaxJsonDepth: number;
  fhirMaxIndexedValueLength: number;
  fhirMaxSearchValueLength: number;
  dicomwebCorsOrigins: string;
  dicomwebAccessCacheTtlMs: number;
  dicomwebQidoMaxUids: number;
  dicomwebRenderedMaxViewport: number;
  dicomwebQidoIndexMaxAgeMs: number;
  dicomwebCacheMaxBytes: number;
  dicomwebCacheTtlMs: number;
  dicomwebCacheMaxEntryBytes: number;
  dicomwebMetadataPrefetch: boolean;
  dicomwebMetadataPrefetchMaxSeries: number;
  dicomwebMetadataPrefetchConcurrency: number;
  authBuiltinServer: boolean;
  authExternalIssuers: string;
  authSigningAlg: 'RS256' | 'ES256' | 'PS256';
  authKeyRotationDays: number;
  authAccessTokenTtlS: number;
  authRefreshTokenTtlS: number;
  authCodeTtlS: number;
  authClockToleranceS: number;
  authCallerCacheTtlMs: number;
  authCallerCacheMaxEntries: number;
  authLoginMaxFailuresPerUser: number;
  authLoginMaxFailuresPerIp: number;
  authLoginWindowS: number;
  ohifDistDir: string;
  webDistDir: string;
  viewerTokenTtlS: number;
  viewerIdleTimeoutS: number;
  changeFeedEnabled: boolean;
  changeFeedPollMs: number;
  changeFeedBatchSize: number;
  changeFeedStartAt: 'beginning' | 'latest';
  changeFeedLeaderRetryMs: number;
  changeFeedDeletionSweepS: number;
}

const port = { type: 'integer', minimum: 1, maximum: 65535 };
const url = { type: 'string', pattern: '^https?://[^\\s/]+(/[^\\s]*)?$' };

export const configVars: readonly ConfigVar[] = [
  {
    env: 'EHR_MODE',
    key: 'mode',
    schema: { enum: ['development', 'production'] },
    default: 'development',
    description: '`development` or `production`. Production refuses development-only features (e.g. `bin/ehr token`).',
  },
  {
    env: 'EHR_HOST',
    key: 'host',
    schema: { type: 'string', minLength: 1 },
    default: '127.0.0.1',
    description: 'Listen address.',
  },
  { env: 'EHR_PORT', key: 'port', schema: port, default: 8000, description: 'Listen port.' },
  {
    env: 'EHR_TRUST_PROXY',
    key: 'trustProxy',
    schema: { type: 'boolean' },
    default: false,
    description:
      'Trust `Forwarded` / `X-Forwarded-*` from a reverse proxy in front of the facade (client address in audit events; public host in DICOMweb URLs).',
  },
  {
    env: 'EHR_PUBLIC_BASE_URL',
    key: 'publicBaseUrl',
    schema: url,
    default: 'http://localhost:8000',
    description:
      'Public base URL of the facade as clients see it (used in FHIR links, token audience, DICOMweb RetrieveURLs).',
  },
  {
    env: 'EHR_DATABASE_URL',
    key: 'databaseUrl',
    schema: { type: 'string', pattern: '^postgres(ql)?://' },
    secret: true,
    description: 'EHR PostgreSQL connection URL, `postgres://user:password@host:port/db`.',
  },
  {
    env: 'EHR_DATABASE_POOL_SIZE',
    key: 'databasePoolSize',
    schema: { type: 'integer', minimum: 1, maximum: 200 },
    default: 10,
    description: 'Maximum connections in the EHR database pool.',
  },
  {
    env: 'EHR_MIGRATE_ON_START',
    key: 'migrateOnStart',
    schema: { type: 'boolean' },
    default: true,
    description: 'Apply pending migrations from `migrations/` when the facade starts.',
  },
  {
    env: 'EHR_ORTHANC_URL',
    key: 'orthancUrl',
    schema: url,
    default: 'http://127.0.0.1:8042',
    description: "Orthanc's REST base URL (never exposed to clients).",
  },
  {
    env: 'EHR_ORTHANC_USERNAME',
    key: 'orthancUsername',
    schema: { type: 'string', minLength: 1 },
    default: 'facade',
    description: 'Orthanc HTTP Basic user.',
  },
  {
    env: 'EHR_ORTHANC_PASSWORD',
    key: 'orthancPassword',
    schema: { type: 'string', minLength: 1 },
    secret: true,
    description: 'Orthanc HTTP Basic password.',
  },
  {
    env: 'EHR_ORTHANC_DICOMWEB_ROOT',
    key: 'orthancDicomWebRoot',
    schema: { type: 'string', pattern: '^/' },
    default: '/dicom-web',
    description: "Path of Orthanc's DICOMweb plugin root.",
  },
  {
    env: 'EHR_UPSTREAM_TIMEOUT_MS',
    key: 'upstreamTimeoutMs',
    schema: { type: 'integer', minimum: 100, maximum: 600000 },
    default: 30000,
    description: 'Time-out for a request to Orthanc before the facade answers 504.',
  },
  {
    env: 'EHR_READY_TIMEOUT_MS',
    key: 'readyTimeoutMs',
    schema: { type: 'integer', minimum: 50, maximum: 60000 },
    default: 2000,
    description: 'Time-out of each dependency check in `/readyz`.',
  },
  {
    env: 'EHR_BREAKER_RETRY_MS',
    key: 'breakerRetryMs',
    schema: { type: 'integer', minimum: 100, maximum: 600000 },
    default: 1000,
    description:
      'After Orthanc or the database stops answering: wait before the first probe; requests fail fast with 503 meanwhile.',
  },
  {
    env: 'EHR_BREAKER_MAX_RETRY_MS',
    key: 'breakerMaxRetryMs',
    schema: { type: 'integer', minimum: 100, maximum: 600000 },
    default: 10000,
    description: 'Longest wait between probes of a dependency that is down (the wait doubles after each failed probe).',
  },
  {
    env: 'EHR_BREAKER_HEARTBEAT_MS',
    key: 'breakerHeartbeatMs',
    schema: { type: 'integer', minimum: 0, maximum: 600000 },
    default: 5000,
    description: 'Probe Orthanc and the database this often while they answer, to notice a hang early; 0 turns it off.',
  },
  {
    env: 'EHR_BREAKER_PROBE_TIMEOUT_MS',
    key: 'breakerProbeTimeoutMs',
    schema: { type: 'integer', minimum: 50, maximum: 60000 },
    default: 5000,
    description: 'Time-out of one probe (heartbeat or recovery check) of Orthanc or the database.',
  },
  {
    env: 'EHR_LOG_LEVEL',
    key: 'logLevel',
    schema: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    default: 'info',
    description:
      'Pino log level. `info`: one line per request when it ends (method, URL, status, time, request id); `debug` adds each incoming request with its headers, credentials redacted.',
  },
  {
    env: 'EHR_METRICS_LISTEN',
    key: 'metricsListen',
    schema: { type: 'string', pattern: '^$|^(\\[[^\\]]+\\]|[^:]+):[0-9]{1,5}$' },
    default: '',
    description:
      'host:port of a separate listener serving `/metrics` without a token (e.g. `127.0.0.1:9464`). Empty: none; `/metrics` on the API port needs an admin token.',
  },
  {
    env: 'EHR_AUDIT_RETENTION_DAYS',
    key: 'auditRetentionDays',
    schema: { type: 'integer', minimum: 0, maximum: 36500 },
    default: 2190,
    description:
      'Days AuditEvents are kept: `bin/ehr audit prune` without `--before` removes older ones behind a hashed checkpoint (the chain stays verifiable). `0` keeps them forever. Default 6 years.',
  },
  {
    env: 'EHR_AUDIT_BATCH_MAX',
    key: 'auditBatchMax',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 100,
    description:
      'Most read AuditEvents one process links into the hash chain in one transaction (group commit); a full queue is written at once.',
  },
  {
    env: 'EHR_AUDIT_BATCH_WAIT_MS',
    key: 'auditBatchWaitMs',
    schema: { type: 'integer', minimum: 0, maximum: 100 },
    default: 0,
    description:
      'Milliseconds an idle audit writer waits for more read AuditEvents to share one commit (0: the next event-loop turn). A response is sent only after its event committed.',
  },
  {
    env: 'EHR_AUDIT_OUTBOX_DIR',
    key: 'auditOutboxDir',
    schema: { type: 'string' },
    default: '',
    description:
      'Empty: each read AuditEvent is committed to PostgreSQL before its response completes. A directory (one per process): events go to a durable local outbox, shipped in batches.',
  },
  {
    env: 'EHR_AUDIT_SPILL_DIR',
    key: 'auditSpillDir',
    schema: { type: 'string' },
    default: '.data/audit-spill',
    description:
      'Durable local directory for AuditEvents PostgreSQL cannot take (shipped when it is back). Empty: such requests answer 503 and the event is lost.',
  },
  {
    env: 'EHR_AUDIT_OUTBOX_SHIP_MS',
    key: 'auditOutboxShipMs',
    schema: { type: 'integer', minimum: 10, maximum: 60000 },
    default: 200,
    description:
      'With `EHR_AUDIT_OUTBOX_DIR`: milliseconds outboxed events wait before they are shipped to PostgreSQL.',
  },
  {
    env: 'EHR_AUDIT_TRANSFER_WINDOW_S',
    key: 'auditTransferWindowS',
    schema: { type: 'integer', minimum: 0, maximum: 3600 },
    default: 300,
    description:
      "Seconds a caller's retrievals of one study form one DICOM transfer: the first is recorded before its answer, the rest counted into one closing event. 0: one event each.",
  },
  {
    env: 'EHR_AUTH_BUILTIN_SERVER',
    key: 'authBuiltinServer',
    schema: { type: 'boolean' },
    default: true,
    description:
      'Run the built-in SMART authorization server under `/auth` (issuer `<EHR_PUBLIC_BASE_URL>/auth`). Turn off when an external IdP issues all tokens.',
  },
  {
    env: 'EHR_AUTH_EXTERNAL_ISSUERS',
    key: 'authExternalIssuers',
    schema: { type: 'string', pattern: '^\\s*\\[' },
    default: '[]',
    description:
      'JSON array of trusted external token issuers: `{"issuer", "jwksUri"}` or `{"issuer", "jwks"}`, optional `"audience"` (default `<EHR_PUBLIC_BASE_URL>/fhir`).',
  },
  {
    env: 'EHR_AUTH_SIGNING_ALG',
    key: 'authSigningAlg',
    schema: { enum: ['RS256', 'ES256', 'PS256'] },
    default: 'RS256',
    description: 'Algorithm of the signing keys the built-in server generates (existing keys keep theirs).',
  },
  {
    env: 'EHR_AUTH_KEY_ROTATION_DAYS',
    key: 'authKeyRotationDays',
    schema: { type: 'integer', minimum: 1, maximum: 365 },
    default: 30,
    description:
      'Age after which the built-in server rotates its signing key (the old key stays in the JWKS until its tokens expire).',
  },
  {
    env: 'EHR_AUTH_ACCESS_TOKEN_TTL_S',
    key: 'authAccessTokenTtlS',
    schema: { type: 'integer', minimum: 30, maximum: 3600 },
    default: 900,
    description: 'Lifetime of access tokens in seconds (at most one hour).',
  },
  {
    env: 'EHR_AUTH_REFRESH_TOKEN_TTL_S',
    key: 'authRefreshTokenTtlS',
    schema: { type: 'integer', minimum: 60, maximum: 7776000 },
    default: 604800,
    description: 'Lifetime of refresh tokens in seconds (each use rotates the token).',
  },
  {
    env: 'EHR_AUTH_CODE_TTL_S',
    key: 'authCodeTtlS',
    schema: { type: 'integer', minimum: 10, maximum: 600 },
    default: 60,
    description: 'Lifetime of authorization codes in seconds (RFC 6749 §4.1.2: at most 10 minutes).',
  },
  {
    env: 'EHR_AUTH_CLOCK_TOLERANCE_S',
    key: 'authClockToleranceS',
    schema: { type: 'integer', minimum: 0, maximum: 300 },
    default: 30,
    description: 'Leeway in seconds when checking `exp`/`nbf`/`iat` of tokens and client assertions.',
  },
  {
    env: 'EHR_AUTH_CALLER_CACHE_TTL_MS',
    key: 'authCallerCacheTtlMs',
    schema: { type: 'integer', minimum: 0, maximum: 60000 },
    default: 10000,
    description:
      'How long a verified token and its resolved caller are reused for the same token (0: no cache); never past `exp`, dropped at once on any change of access.',
  },
  {
    env: 'EHR_AUTH_CALLER_CACHE_MAX_ENTRIES',
    key: 'authCallerCacheMaxEntries',
    schema: { type: 'integer', minimum: 1, maximum: 1000000 },
    default: 10000,
    description: 'Most tokens kept in the caller cache; the least recently used are dropped first.',
  },
  {
    env: 'EHR_AUTH_LOGIN_MAX_FAILURES_PER_USER',
    key: 'authLoginMaxFailuresPerUser',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 5,
    description: 'Failed logins allowed per user name within the login window before further attempts are refused.',
  },
  {
    env: 'EHR_AUTH_LOGIN_MAX_FAILURES_PER_IP',
    key: 'authLoginMaxFailuresPerIp',
    schema: { type: 'integer', minimum: 1, maximum: 100000 },
    default: 20,
    description: 'Failed logins allowed per client IP within the login window.',
  },
  {
    env: 'EHR_AUTH_LOGIN_WINDOW_S',
    key: 'authLoginWindowS',
    schema: { type: 'integer', minimum: 10, maximum: 86400 },
    default: 900,
    description: 'Length of the failed-login counting window in seconds.',
  },
  {
    env: 'EHR_DICOMWEB_CORS_ORIGINS',
    key: 'dicomwebCorsOrigins',
    schema: { type: 'string', pattern: '^(https?://[^\\s,/]+(,https?://[^\\s,/]+)*)?$' },
    default: '',
    description:
      'Comma-separated origins (e.g. `https://viewer.example.org`) allowed to call `/dicom-web` from a browser (CORS); empty: none.',
  },
  {
    env: 'EHR_DICOMWEB_ACCESS_CACHE_TTL_MS',
    key: 'dicomwebAccessCacheTtlMs',
    schema: { type: 'integer', minimum: 0, maximum: 600000 },
    default: 60000,
    description:
      'How long the study UID → patient lookup of DICOMweb authorization is cached (0: no cache); link changes invalidate it at once, the TTL is a safety net.',
  },
  {
    env: 'EHR_DICOMWEB_CACHE_MAX_BYTES',
    key: 'dicomwebCacheMaxBytes',
    schema: { type: 'integer', minimum: 0, maximum: 17179869184 },
    // 32 MiB: ~300 series of a typical CT (67 KB metadata + 36 KB instance QIDO each), within the facade's 250 MB RSS
    // budget on top of its streaming peaks.
    default: 33554432,
    description:
      'Bytes of Orthanc answers (series metadata, default instance QIDO of a series) kept in the DICOMweb series cache, least recently used dropped (0: no cache).',
  },
  {
    env: 'EHR_DICOMWEB_CACHE_TTL_MS',
    key: 'dicomwebCacheTtlMs',
    schema: { type: 'integer', minimum: 0, maximum: 86400000 },
    default: 60000,
    description:
      'Lifetime of a DICOMweb series cache entry (0: no cache); changes the facade sees invalidate at once, the TTL bounds changes made in Orthanc directly.',
  },
  {
    env: 'EHR_DICOMWEB_CACHE_MAX_ENTRY_BYTES',
    key: 'dicomwebCacheMaxEntryBytes',
    schema: { type: 'integer', minimum: 0, maximum: 1073741824 },
    default: 4194304,
    description: 'Larger answers are streamed through the DICOMweb series cache uncached.',
  },
  {
    env: 'EHR_DICOMWEB_METADATA_PREFETCH',
    key: 'dicomwebMetadataPrefetch',
    schema: { type: 'boolean' },
    default: false,
    description:
      "`true`: after a caller's series QIDO-RS succeeds, fetch the listed series' metadata into the series cache in the background. Off by default: it costs Orthanc.",
  },
  {
    env: 'EHR_DICOMWEB_METADATA_PREFETCH_MAX_SERIES',
    key: 'dicomwebMetadataPrefetchMaxSeries',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 8,
    description:
      'Series of one series QIDO-RS answer whose metadata is warmed, at most (the first ones of the answer).',
  },
  {
    env: 'EHR_DICOMWEB_METADATA_PREFETCH_CONCURRENCY',
    key: 'dicomwebMetadataPrefetchConcurrency',
    schema: { type: 'integer', minimum: 1, maximum: 16 },
    default: 2,
    description:
      'Metadata warm-up requests to Orthanc at once per facade process; more wait (64 at most, the oldest dropped).',
  },
  {
    env: 'EHR_DICOMWEB_QIDO_MAX_UIDS',
    key: 'dicomwebQidoMaxUids',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 200,
    description:
      'Most allowed study UIDs sent to Orthanc in one QIDO query for a patient-restricted caller; larger sets are queried in chunks and merged.',
  },
  {
    env: 'EHR_DICOMWEB_RENDERED_MAX_VIEWPORT',
    key: 'dicomwebRenderedMaxViewport',
    schema: { type: 'integer', minimum: 16, maximum: 8192 },
    default: 4096,
    description:
      'Largest width and height (pixels) of a DICOMweb rendered or thumbnail `viewport`; larger ones get 400 (Orthanc allocates the whole image).',
  },
  {
    env: 'EHR_DICOMWEB_QIDO_INDEX_MAX_AGE_MS',
    key: 'dicomwebQidoIndexMaxAgeMs',
    schema: { type: 'integer', minimum: 0, maximum: 86400000 },
    default: 60000,
    description:
      "Age at which the EHR's copy of Orthanc's study-level QIDO-RS answers (for patient-restricted callers) is refreshed; 0: always ask Orthanc.",
  },
  {
    env: 'EHR_FHIR_MRN_SYSTEM',
    key: 'fhirMrnSystem',
    schema: { type: 'string', pattern: '^(https?|urn):\\S+$' },
    default: 'http://imaging-ehr.local/fhir/sid/mrn',
    description: 'FHIR identifier system of the MRN (Patient.identifier; the DICOM PatientID).',
  },
  {
    env: 'EHR_FHIR_MRN_FORMAT',
    key: 'fhirMrnFormat',
    schema: { type: 'string', pattern: '\\{seq(:[1-9][0-9]?)?\\}' },
    default: 'CLI-{year}-{seq:5}',
    description: 'Format of server-allocated MRNs: `{year}` and `{seq:N}` (sequence, zero-padded to N digits).',
  },
  {
    env: 'EHR_FHIR_ACCESSION_SYSTEM',
    key: 'fhirAccessionSystem',
    schema: { type: 'string', pattern: '^(https?|urn):\\S+$' },
    default: 'http://imaging-ehr.local/fhir/sid/accession',
    description: 'FHIR identifier system of the accession number (ServiceRequest.identifier, type ACSN).',
  },
  {
    env: 'EHR_FHIR_ACCESSION_FORMAT',
    key: 'fhirAccessionFormat',
    schema: { type: 'string', pattern: '\\{seq(:[1-9][0-9]?)?\\}' },
    default: 'ACC-{year}-{seq:5}',
    description: 'Format of server-allocated accession numbers: `{year}` and `{seq:N}`.',
  },
  {
    env: 'EHR_FHIR_DEFAULT_COUNT',
    key: 'fhirDefaultCount',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 20,
    description: 'FHIR search page size when the client gives no `_count`.',
  },
  {
    env: 'EHR_FHIR_MAX_COUNT',
    key: 'fhirMaxCount',
    schema: { type: 'integer', minimum: 1, maximum: 10000 },
    default: 1000,
    description: 'Cap on FHIR `_count` (larger values are lowered to it).',
  },
  {
    env: 'EHR_FHIR_MAX_BODY_BYTES',
    key: 'fhirMaxBodyBytes',
    schema: { type: 'integer', minimum: 1024, maximum: 104857600 },
    default: 1048576,
    description: 'Largest FHIR request body in bytes; larger bodies get 413.',
  },
  {
    env: 'EHR_FHIR_MAX_JSON_DEPTH',
    key: 'fhirMaxJsonDepth',
    schema: { type: 'integer', minimum: 16, maximum: 1000 },
    default: 64,
    description:
      'Deepest nesting of objects/arrays in a FHIR JSON body, checked before parsing; deeper bodies get 400.',
  },
  {
    env: 'EHR_FHIR_MAX_INDEXED_VALUE_LENGTH',
    key: 'fhirMaxIndexedValueLength',
    schema: { type: 'integer', minimum: 64, maximum: 600 },
    default: 512,
    description:
      'Longest value (characters) of an element that a search parameter indexes; a longer one gets 400 naming it.',
  },
  {
    env: 'EHR_FHIR_MAX_SEARCH_VALUE_LENGTH',
    key: 'fhirMaxSearchValueLength',
    schema: { type: 'integer', minimum: 256, maximum: 65536 },
    default: 4096,
    description: 'Longest value (characters, decoded) of one FHIR search parameter; a longer one gets 400.',
  },
  {
    env: 'EHR_STOW_MAX_INSTANCE_BYTES',
    key: 'stowMaxInstanceBytes',
    schema: { type: 'integer', minimum: 1024, maximum: 4294967296 },
    default: 268435456,
    description:
      'Largest DICOM instance (one multipart part) accepted by STOW-RS and the upload API; a part is buffered up to this size. A larger instance fails alone (0xA700) and the others go on.',
  },
  {
    env: 'EHR_STOW_MAX_REQUEST_BYTES',
    key: 'stowMaxRequestBytes',
    schema: { type: 'integer', minimum: 1024, maximum: 1099511627776 },
    default: 10737418240,
    description:
      'Largest STOW-RS or upload request body: a larger `Content-Length` gets 413 before the body is read; a chunked body stops being read there.',
  },
  {
    env: 'EHR_STOW_UNMATCHED',
    key: 'stowUnmatched',
    schema: { enum: ['reject', 'hold'] },
    default: 'reject',
    description:
      '`reject`: an instance that does not match a patient and order fails. `hold`: it is stored anyway, reported as a warning and queued in `imaging_reconciliation_queue` for manual linking.',
  },
  {
    env: 'EHR_STOW_DEMOGRAPHICS_MISMATCH',
    key: 'stowDemographicsMismatch',
    schema: { enum: ['hold', 'refuse'] },
    default: 'hold',
    description:
      'MRN and accession match but name, birth date or sex contradict the EHR: `hold` stores it unlinked for review (warning 0xB100), `refuse` fails it (0xA900).',
  },
  {
    env: 'EHR_STOW_ORTHANC_CONCURRENCY',
    key: 'stowOrthancConcurrency',
    schema: { type: 'integer', minimum: 1, maximum: 16 },
    default: 3,
    description:
      'Instances of one STOW-RS request being sent to Orthanc at once (each holds at most one buffered instance). Three keep Orthanc busy while the facade reads and checks the next instance.',
  },
  {
    env: 'EHR_DICOMWEB_ENDPOINT_ID',
    key: 'dicomwebEndpointId',
    schema: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,64}$' },
    default: 'dicomweb',
    description:
      'Id of the FHIR Endpoint resource (`dicom-wado-rs`, address `<EHR_PUBLIC_BASE_URL>/dicom-web`) that ImagingStudy.endpoint references; created on first upload when missing.',
  },
  {
    env: 'EHR_OHIF_DIST_DIR',
    key: 'ohifDistDir',
    schema: { type: 'string' },
    default: '.tools/ohif/dist',
    description:
      'The unpacked OHIF viewer build that the facade serves at `/` and `/viewer` (relative to the project folder; `make up` fetches it). When absent, the viewer paths answer 503.',
  },
  {
    env: 'EHR_WEB_DIST_DIR',
    key: 'webDistDir',
    schema: { type: 'string' },
    default: 'web/dist',
    description:
      'The built staff web app that the facade serves at `/app/` (relative to the project folder; `make up` builds it). When absent, `/app/` answers 503.',
  },
  {
    env: 'EHR_VIEWER_TOKEN_TTL_S',
    key: 'viewerTokenTtlS',
    schema: { type: 'integer', minimum: 30, maximum: 900 },
    default: 600,
    description: 'Lifetime in seconds of the study-scoped viewer tokens in `viewer-url` links (at most 15 minutes).',
  },
  {
    env: 'EHR_VIEWER_IDLE_TIMEOUT_S',
    key: 'viewerIdleTimeoutS',
    schema: { type: 'integer', minimum: 60, maximum: 86400 },
    default: 1800,
    description:
      'Seconds without user activity after which an open viewer (link or sign-in) stops renewing its access.',
  },
  {
    env: 'EHR_CHANGE_FEED_ENABLED',
    key: 'changeFeedEnabled',
    schema: { type: 'boolean' },
    default: true,
    description:
      "Run the consumer of Orthanc's `/changes` (C-STORE ingest: link arriving studies, queue unmatched ones). One replica consumes at a time.",
  },
  {
    env: 'EHR_CHANGE_FEED_POLL_MS',
    key: 'changeFeedPollMs',
    schema: { type: 'integer', minimum: 100, maximum: 60000 },
    default: 2000,
    description: 'How often the consumer asks Orthanc for new changes when it has caught up (milliseconds).',
  },
  {
    env: 'EHR_CHANGE_FEED_BATCH_SIZE',
    key: 'changeFeedBatchSize',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 100,
    description: 'Changes read from Orthanc per request.',
  },
  {
    env: 'EHR_CHANGE_FEED_START_AT',
    key: 'changeFeedStartAt',
    schema: { enum: ['beginning', 'latest'] },
    default: 'beginning',
    description:
      'Where a consumer without a stored cursor starts: `beginning` indexes everything already in Orthanc, `latest` only what arrives from now on. Ignored once a cursor exists.',
  },
  {
    env: 'EHR_CHANGE_FEED_LEADER_RETRY_MS',
    key: 'changeFeedLeaderRetryMs',
    schema: { type: 'integer', minimum: 100, maximum: 60000 },
    default: 5000,
    description:
      "Lease check interval: how often a standby replica tries to take over the consumer's advisory lock, and how often the leader checks its lock session.",
  },
  {
    env: 'EHR_CHANGE_FEED_DELETION_SWEEP_S',
    key: 'changeFeedDeletionSweepS',
    schema: { type: 'integer', minimum: 1, maximum: 86400 },
    default: 60,
    description:
      "Seconds between the leader's comparisons of linked studies with Orthanc to find deleted ones; a deleted study's ImagingStudy becomes `entered-in-error`.",
  },
];
