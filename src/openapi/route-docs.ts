/**
 * What the OpenAPI document says about each documented route beyond the route's own validation schemas (params,
 * querystring and body schemas are taken from the route as registered): summary, description, tags, security,
 * responses, and the OAuth endpoints' form bodies (which their routes parse themselves, RFC 6749 §3.2).
 *
 * Kept here rather than on the routes so that documenting a route never changes how Fastify validates or serializes
 * it. Keys are `METHOD path` as registered. A route under a documented prefix that has no entry still appears in the
 * document (with its path, method and validation schemas); tests/openapi.int.test.ts checks that every route does.
 */
import { bearerSecurity, errorBody, protectedErrors } from './schemas.ts';

/** SMART App Launch 2.x `management_endpoint` (https://hl7.org/fhir/smart-app-launch/conformance.html). */
const connectedApps =
  'The active grants of the built-in authorization server to apps on behalf of the signed-in user (SMART ' +
  '`management_endpoint`: the web app screen /app/authorizations). Only tokens the built-in server issued to a user.';

export interface RouteDoc {
  summary: string;
  description?: string;
  tags: string[];
  security?: Array<Record<string, string[]>>;
  body?: Record<string, unknown>;
  response?: Record<string, Record<string, unknown>>;
}

const oauthError = {
  description: 'OAuth error (RFC 6749 §5.2)',
  type: 'object',
  properties: { error: { type: 'string' }, error_description: { type: 'string' } },
} as const;

function form(fields: Record<string, string>, required: string[] = []): Record<string, unknown> {
  return {
    content: {
      'application/x-www-form-urlencoded': {
        schema: {
          type: 'object',
          required,
          properties: Object.fromEntries(
            Object.entries(fields).map(([k, description]) => [k, { type: 'string', description }]),
          ),
        },
      },
    },
  };
}

const unmatchedItem = {
  type: 'object',
  description: 'A study stored in Orthanc that matched no patient or order, waiting to be linked or rejected.',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    status: { type: 'string' },
    studyInstanceUid: { type: 'string' },
  },
} as const;

const queueDescription = 'Admins and radiologists only (others 403).';

export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'GET /healthz': {
    summary: 'Liveness',
    description: 'Answers 200 while the process runs. Public.',
    tags: ['health'],
    security: [],
    response: { 200: { description: 'Alive', type: 'object', properties: { status: { const: 'ok' } } } },
  },
  'GET /readyz': {
    summary: 'Readiness',
    description:
      'Answers 200 when the EHR database (migrations applied) and Orthanc both answer in time; 503 naming each failing dependency otherwise. Public.',
    tags: ['health'],
    security: [],
    response: {
      200: { description: 'Ready', type: 'object', additionalProperties: true },
      503: { description: 'A dependency is down or late', type: 'object', additionalProperties: true },
    },
  },
  'GET /auth/authorize': {
    summary: 'Authorization endpoint (login page)',
    description:
      'OAuth 2.0 authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636), SMART App Launch 2.x. Query: response_type=code, client_id, redirect_uri, scope, state, aud, code_challenge, code_challenge_method=S256. Answers the login page (HTML).',
    tags: ['authorization'],
    security: [],
    response: { 200: { description: 'Login page (text/html)', type: 'string' }, 400: oauthError },
  },
  'POST /auth/authorize': {
    summary: 'Submit the login form',
    description: 'Checks the user name and password; redirects to the client with a code, or to the patient picker.',
    tags: ['authorization'],
    security: [],
    body: form({ username: 'User name', password: 'Password', request: 'The pending authorization request' }),
    response: { 302: { description: 'Redirect to the client (code) or the patient picker' }, 400: oauthError },
  },
  'POST /auth/authorize/patient': {
    summary: 'Choose the patient of a patient-launch',
    description: 'SMART `launch/patient`: the user picks one of the patients granted to them.',
    tags: ['authorization'],
    security: [],
    body: form({ patient: 'Patient id', request: 'The pending authorization request' }),
    response: { 302: { description: 'Redirect to the client with a code' }, 400: oauthError },
  },
  'POST /auth/token': {
    summary: 'Token endpoint',
    description:
      'Grants `authorization_code` (with PKCE), `refresh_token` and `client_credentials` (SMART Backend Services, `private_key_jwt`, RFC 7523). Access tokens are RFC 9068 JWTs.',
    tags: ['authorization'],
    security: [],
    body: form(
      {
        grant_type: 'authorization_code | refresh_token | client_credentials',
        code: 'authorization_code: the code',
        redirect_uri: 'authorization_code: as in the authorization request',
        code_verifier: 'authorization_code: the PKCE verifier',
        refresh_token: 'refresh_token: the refresh token',
        scope: 'requested scopes (narrowed to the client ceiling)',
        client_id: 'public clients: the client id',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: 'signed JWT of a confidential or backend client',
      },
      ['grant_type'],
    ),
    response: {
      200: {
        description: 'Token response (RFC 6749 §5.1)',
        type: 'object',
        additionalProperties: true,
        properties: {
          access_token: { type: 'string' },
          token_type: { const: 'Bearer' },
          expires_in: { type: 'integer' },
          scope: { type: 'string' },
          refresh_token: { type: 'string' },
          patient: { type: 'string' },
        },
      },
      400: oauthError,
      401: oauthError,
    },
  },
  'POST /auth/introspect': {
    summary: 'Token introspection (RFC 7662)',
    description: 'For admin users and backend clients; a client sees only its own tokens as active.',
    tags: ['authorization'],
    security: bearerSecurity,
    body: form({ token: 'The token to describe' }, ['token']),
    response: {
      200: { description: 'Introspection response', type: 'object', additionalProperties: true },
      403: oauthError,
    },
  },
  'POST /auth/revoke': {
    summary: 'Token revocation (RFC 7009)',
    description: 'A client revokes one of its access or refresh tokens.',
    tags: ['authorization'],
    security: [],
    body: form({ token: 'The token to revoke', client_id: 'Public clients', client_assertion: 'Other clients' }, [
      'token',
    ]),
    response: { 200: { description: 'Revoked (or unknown: same answer)' }, 400: oauthError, 401: oauthError },
  },
  'GET /auth/jwks': {
    summary: 'Signing keys (JWK Set)',
    description: 'The public keys that verify tokens of the built-in authorization server (RFC 7517).',
    tags: ['authorization'],
    security: [],
    response: { 200: { description: 'JWK Set', type: 'object', additionalProperties: true } },
  },
  'POST /api/v1/dicom/upload': {
    summary: 'Upload DICOM files (form)',
    description:
      'A `multipart/form-data` form with one or more `.dcm` files, stored like STOW-RS (validated, matched to the patient and order). For web forms; DICOM clients use STOW-RS at /dicom-web/studies.',
    tags: ['imaging'],
    security: bearerSecurity,
    body: {
      content: {
        'multipart/form-data': {
          schema: {
            type: 'object',
            properties: { file: { type: 'array', items: { type: 'string', format: 'binary' } } },
          },
        },
      },
    },
    response: {
      200: {
        description: 'Every file stored',
        type: 'object',
        properties: {
          success: { type: 'boolean' },
          message: { type: 'string' },
          study_instance_uid: { type: ['string', 'null'] },
          order_id: { type: ['string', 'null'] },
          accepted: { type: 'integer' },
          rejected: {
            type: 'array',
            items: { type: 'object', properties: { file: { type: 'string' }, reason: { type: 'string' } } },
          },
        },
      },
      202: { description: 'Some files stored, some rejected or held for linking (same body)' },
      409: { description: 'No file stored (same body)' },
      ...protectedErrors,
    },
  },
  'GET /api/v1/dicom/viewer-url/:orderId': {
    summary: 'Viewer link of an order',
    description:
      "An OHIF viewer link for the imaging study linked to the order (ServiceRequest id), with a short-lived viewer token renewed while the viewer is open. It reads the patient's studies the user may read (priors), or only that study with `?share=study`. Also as FHIR `ServiceRequest/{id}/$viewer-url`.",
    tags: ['imaging'],
    security: bearerSecurity,
    response: {
      200: {
        description: 'The link',
        type: 'object',
        properties: {
          viewer_url: { type: 'string', format: 'uri' },
          expires_at: { type: 'string', format: 'date-time' },
        },
      },
      404: { ...errorBody, description: 'No such order, or no study linked to it' },
      ...protectedErrors,
    },
  },
  'GET /api/v1/studies/:study/archive': {
    summary: 'Download a study',
    description:
      'The study as a zip of its DICOM files (`format=zip`, the default) or as DICOM media with a DICOMDIR (`format=dicomdir`), streamed from the archive. Authorized like WADO-RS: a study the caller may not read answers 404 like an unknown one. Audited as a DICOM Data Export (DCM 110106).',
    tags: ['imaging'],
    security: bearerSecurity,
    response: {
      200: { description: 'The archive (application/zip)', type: 'string', format: 'binary' },
      400: { ...errorBody, description: 'Not a UID, or an unknown parameter or format' },
      404: { ...errorBody, description: 'No such study, or not one the caller may read' },
      ...protectedErrors,
    },
  },
  'GET /api/v1/viewer/session': {
    summary: 'Check a viewer link',
    description:
      'Called by the viewer with its viewer token before OHIF loads: may this link open the studies in `studies` (comma-separated StudyInstanceUIDs)? See docs/viewer.md.',
    tags: ['imaging'],
    security: bearerSecurity,
    response: {
      200: {
        description: 'The viewer session',
        type: 'object',
        properties: {
          study: { type: 'string' },
          reach: { type: 'string', enum: ['study', 'patient'] },
          expires_at: { type: 'string', format: 'date-time' },
          idle_timeout_s: { type: 'integer' },
        },
      },
      404: { ...errorBody, description: 'The link does not open a requested study (`study_not_available`)' },
      ...protectedErrors,
    },
  },
  'POST /api/v1/viewer/renew': {
    summary: 'Renew a viewer token',
    description:
      'A fresh viewer token for the same user, patient, study, reach and session, after the user\'s current rights are checked again. Body `{"idle_s": <seconds without activity>}`. Each token renews once; audited as a token issued. See docs/viewer.md.',
    tags: ['imaging'],
    security: bearerSecurity,
    response: {
      200: {
        description: 'The new token',
        type: 'object',
        properties: {
          token: { type: 'string' },
          expires_at: { type: 'string', format: 'date-time' },
          expires_in: { type: 'integer' },
          idle_timeout_s: { type: 'integer' },
        },
      },
      404: { ...errorBody, description: 'The study is no longer filed under the patient' },
      ...protectedErrors,
    },
  },
  'GET /api/v1/dicom/unmatched': {
    summary: 'List the reconciliation queue',
    description: `Studies received by C-STORE or STOW (hold mode) that matched no order. ${queueDescription}`,
    tags: ['imaging'],
    security: bearerSecurity,
    response: {
      200: {
        description: 'Queue items',
        type: 'object',
        properties: { items: { type: 'array', items: unmatchedItem } },
      },
      ...protectedErrors,
    },
  },
  'GET /api/v1/dicom/unmatched/:id': {
    summary: 'One queue item',
    description: queueDescription,
    tags: ['imaging'],
    security: bearerSecurity,
    response: { 200: { ...unmatchedItem, description: 'The item' }, 404: errorBody, ...protectedErrors },
  },
  'POST /api/v1/dicom/unmatched/:id/link': {
    summary: 'Link a queued study to a patient and order',
    description: `Creates the ImagingStudy and updates the order. ${queueDescription}`,
    tags: ['imaging'],
    security: bearerSecurity,
    response: { 200: { ...unmatchedItem, description: 'Linked' }, 409: errorBody, ...protectedErrors },
  },
  'POST /api/v1/dicom/unmatched/:id/reject': {
    summary: 'Reject a queued study',
    description: queueDescription,
    tags: ['imaging'],
    security: bearerSecurity,
    response: { 200: { ...unmatchedItem, description: 'Rejected' }, 409: errorBody, ...protectedErrors },
  },
  'GET /api/v1/me/authorizations': {
    summary: "List the signed-in user's connected apps",
    description: `${connectedApps} \`current\`: the grant of the asking token.`,
    tags: ['authorization'],
    security: bearerSecurity,
    response: {
      200: {
        description: 'Active grants, most recently used first',
        type: 'object',
        properties: {
          items: {
            type: 'array',
            items: {
              type: 'object',
              properties: Object.fromEntries(
                [
                  ['grantId', 'string'],
                  ['clientId', 'string'],
                  ['clientName', 'string'],
                  ['scope', 'string'],
                  ['patient', ['string', 'null']],
                  ['createdAt', 'string'],
                  ['lastUsedAt', 'string'],
                  ['expiresAt', 'string'],
                  ['current', 'boolean'],
                ].map(([k, type]) => [k, { type }]),
              ),
            },
          },
        },
      },
      ...protectedErrors,
    },
  },
  'DELETE /api/v1/me/authorizations/:grantId': {
    summary: 'Revoke one of the connected apps',
    description: `${connectedApps} Ends the grant's refresh tokens and access tokens.`,
    tags: ['authorization'],
    security: bearerSecurity,
    response: {
      204: { description: 'Revoked' },
      404: { ...errorBody, description: 'No such active grant of this user' },
      ...protectedErrors,
    },
  },
};
