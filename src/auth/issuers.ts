/**
 * Trusted token issuers: the built-in authorization server plus any number of external ones (Keycloak, Okta, an EHR)
 * from `EHR_AUTH_EXTERNAL_ISSUERS`, each with a JWKS URL (fetched and cached by `jose`) or static keys.
 */
import { Ajv } from 'ajv';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet } from 'jose';
import { ConfigError } from '../config/load-config.ts';
import type { TrustedIssuer } from './verify-token.ts';

export interface ExternalIssuerConfig {
  issuer: string;
  jwksUri?: string;
  jwks?: JSONWebKeySet;
  audience?: string;
}

const schema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['issuer'],
    properties: {
      issuer: { type: 'string', pattern: '^https?://' },
      jwksUri: { type: 'string', pattern: '^https?://' },
      audience: { type: 'string', minLength: 1 },
      jwks: {
        type: 'object',
        required: ['keys'],
        properties: { keys: { type: 'array', minItems: 1, items: { type: 'object', required: ['kty'] } } },
      },
    },
    oneOf: [{ required: ['jwksUri'] }, { required: ['jwks'] }],
  },
};
const validate = new Ajv({ allErrors: false }).compile(schema);

/** Parses and checks `EHR_AUTH_EXTERNAL_ISSUERS`. Throws {@link ConfigError}. */
export function parseExternalIssuers(json: string): ExternalIssuerConfig[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new ConfigError('EHR_AUTH_EXTERNAL_ISSUERS', 'is not valid JSON');
  }
  if (!validate(value)) {
    const e = validate.errors?.[0];
    throw new ConfigError('EHR_AUTH_EXTERNAL_ISSUERS', `${e?.instancePath || ''} ${e?.message ?? 'is invalid'}`.trim());
  }
  return value as ExternalIssuerConfig[];
}

export function externalIssuer(c: ExternalIssuerConfig, fhirBaseUrl: string): TrustedIssuer {
  const getKey = c.jwksUri
    ? createRemoteJWKSet(new URL(c.jwksUri), { timeoutDuration: 3000, cooldownDuration: 30_000 })
    : createLocalJWKSet(c.jwks as JSONWebKeySet);
  return { issuer: c.issuer, audience: c.audience ?? fhirBaseUrl, getKey, builtin: false };
}
