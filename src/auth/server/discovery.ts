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
