/**
 * JSON schemas shared by route `schema` objects (and so by the OpenAPI document generated from them). Response
 * schemas also drive Fastify's serializer, so each lists every property the route sends.
 */

/** The generic error body of routes outside FHIR and DICOMweb (src/app.ts error handler, the resource server). */
export const errorBody = {
  type: 'object',
  description: 'An error: a short code or message, an optional description and the request id (X-Request-Id).',
  properties: {
    error: { type: 'string' },
    error_description: { type: 'string' },
    requestId: { type: 'string' },
  },
  additionalProperties: true,
} as const;

/** Standard error responses of a protected route. */
export const protectedErrors = {
  401: { ...errorBody, description: 'Missing, invalid or expired bearer token (RFC 6750 §3.1)' },
  403: { ...errorBody, description: 'The token or role does not permit this' },
} as const;

/** The security requirement of routes that need a bearer token. */
export const bearerSecurity = [{ bearer: [] }];
