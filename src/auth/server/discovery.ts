/**
 * SMART configuration (SMART App Launch 2.x §"Conformance": `/.well-known/smart-configuration`), built from the public
 * base URL. Pure.
 */
import { CONTEXT_SCOPES } from '../scopes.ts';

export interface AuthUrls {
  readonly issuer: string;
  readonly fhirBase: string;
  readonly authorize: string;
  readonly token: string;
  readonly introspect: string;
  readonly revoke: string;
  readonly jwks: string;
  /** SMART `management_endpoint`: the web app's screen of the user's connected apps. */
  readonly manage: string;
}

export function authUrls(publicBaseUrl: string): AuthUrls {
  const issuer = `${publicBaseUrl}/auth`;
  return {
    issuer,
    fhirBase: `${publicBaseUrl}/fhir`,
    authorize: `${issuer}/authorize`,
    token: `${issuer}/token`,
    introspect: `${issuer}/introspect`,
    revoke: `${issuer}/revoke`,
    jwks: `${issuer}/jwks`,
    manage: `${publicBaseUrl}/app/authorizations`,
  };
}

export function smartConfiguration(urls: AuthUrls, signingAlg: string): Record<string, unknown> {
  return {
    issuer: urls.issuer,
    jwks_uri: urls.jwks,
    authorization_endpoint: urls.authorize,
    token_endpoint: urls.token,
    introspection_endpoint: urls.introspect,
    revocation_endpoint: urls.revoke,
    management_endpoint: urls.manage,
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types_supported: ['code'],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256', 'RS384', 'ES256', 'ES384', 'PS256', 'PS384'],
    id_token_signing_alg_values_supported: [signingAlg],
    scopes_supported: [
      ...CONTEXT_SCOPES.filter((s) => s !== 'launch' && s !== 'profile'),
      'patient/*.rs',
      'patient/*.cruds',
      'user/*.rs',
      'user/*.cruds',
      'system/*.rs',
      'system/*.cruds',
      'patient/*.read',
      'user/*.read',
      'user/*.write',
      'system/*.read',
    ],
    code_challenge_methods_supported: ['S256'],
    capabilities: [
      'launch-standalone',
      'client-public',
      'client-confidential-asymmetric',
      'context-standalone-patient',
      'permission-patient',
      'permission-user',
      'permission-offline',
      'permission-online',
      'permission-v1',
      'permission-v2',
      'sso-openid-connect',
      'authorize-post',
    ],
  };
}

/**
 * OpenID Connect Discovery 1.0 §3 provider metadata at `{issuer}/.well-known/openid-configuration` (the issuer is
 * `/auth`), so that the `sso-openid-connect` capability can be used by OIDC libraries: the same endpoints and keys as
 * the SMART configuration, public subject identifiers and the id_token claims this server issues (tokens.ts).
 */
export function openidConfiguration(urls: AuthUrls, signingAlg: string): Record<string, unknown> {
  return {
    issuer: urls.issuer,
    authorization_endpoint: urls.authorize,
    token_endpoint: urls.token,
    jwks_uri: urls.jwks,
    introspection_endpoint: urls.introspect,
    revocation_endpoint: urls.revoke,
    scopes_supported: ['openid', 'fhirUser', 'profile', 'launch/patient', 'offline_access', 'online_access'],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [signingAlg],
    token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
    token_endpoint_auth_signing_alg_values_supported: ['RS256', 'RS384', 'ES256', 'ES384', 'PS256', 'PS384'],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nonce', 'name', 'fhirUser'],
    code_challenge_methods_supported: ['S256'],
  };
}
