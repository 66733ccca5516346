/**
 * Describes requests to the built-in authorization server from the request form and the response body (pure), so
 * that login, token issue and refused client assertions get their specific events without hooks in the server's
 * handlers:
 *
 * - `POST /auth/token` answered 200: a token issued; its claims are read from the access token just minted
 *   (jti, sub, client_id, scope, patient, fhirUser). The token itself is never recorded.
 * - `POST /auth/token` answered 401 `invalid_client` with a `client_assertion` (RFC 7523 §3, SMART Backend
 *   Services): a refused client assertion, with the server's reason.
 * - `POST /auth/authorize` with a username (the login form): login succeeded (2xx/3xx) or failed (401, 429).
 */
import { decodeJwt } from 'jose';
import type { AuditDescription } from './context.ts';

function form(body: unknown): URLSearchParams {
  return new URLSearchParams(typeof body === 'string' ? body : '');
}

function json(payload: unknown): Record<string, unknown> | undefined {
  if (typeof payload !== 'string') return undefined;
  try {
    const v = JSON.parse(payload) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The claimed client of a client assertion (`iss`), without trusting it: only for the record. */
function assertionClient(assertion: string | null): string | undefined {
  if (!assertion) return undefined;
  try {
    return str(decodeJwt(assertion).iss)?.slice(0, 128);
  } catch {
    return undefined;
  }
}

export function describeAuthRequest(
  method: string,
  path: string,
  status: number,
  requestBody: unknown,
  payload: unknown,
): AuditDescription | undefined {
  if (method !== 'POST') return undefined;
  const f = form(requestBody);
  if (path === '/auth/token') {
    const res = json(payload);
    if (status === 200 && typeof res?.['access_token'] === 'string') {
      let claims: Record<string, unknown>;
      try {
        claims = decodeJwt(res['access_token']) as Record<string, unknown>;
      } catch {
        return undefined;
      }
      const clientId = str(claims['client_id']) ?? str(f.get('client_id')) ?? 'unknown';
      const sub = str(claims['sub']) ?? clientId;
      const fhirUser = str(claims['fhirUser']);
      const isUser = sub !== clientId;
      return {
        kind: 'token-issued',
        input: {
          grantType: str(f.get('grant_type')) ?? 'unknown',
          clientId,
          user: isUser ? { who: fhirUser ?? sub, sub, ...(fhirUser ? { fhirUser } : {}), roles: [] } : undefined,
          jti: str(claims['jti']) ?? 'unknown',
          scope: str(claims['scope']) ?? str(res['scope']) ?? '',
          patientId: str(claims['patient']),
        },
      };
    }
    const assertion = f.get('client_assertion');
    if (status === 401 && assertion && res?.['error'] === 'invalid_client') {
      return {
        kind: 'client-assertion-refused',
        input: {
          clientId: str(f.get('client_id'))?.slice(0, 128) ?? assertionClient(assertion),
          reason: str(res['error_description'])?.slice(0, 200) ?? 'invalid_client',
        },
      };
    }
    return undefined;
  }
  if (path === '/auth/authorize' && f.has('username')) {
    const clientId = str(f.get('client_id'))?.slice(0, 128);
    return { kind: 'login', input: { username: (f.get('username') ?? '').slice(0, 128), clientId } };
  }
  return undefined;
}
