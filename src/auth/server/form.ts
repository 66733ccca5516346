/**
 * `application/x-www-form-urlencoded` bodies of the OAuth endpoints. RFC 6749 §3.1/§3.2: parameters sent without a
 * value are treated as omitted, and a parameter MUST NOT be included more than once.
 */
import { OAuthError } from './errors.ts';

export function parseForm(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    if (Object.hasOwn(out, k)) throw new OAuthError('invalid_request', `parameter ${k} repeated`);
    if (v !== '') out[k] = v;
  }
  return out;
}

/** Query parameters of GET /auth/authorize, with the same rules. */
export function singleParams(query: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new OAuthError('invalid_request', `parameter ${k} repeated`);
    if (typeof v === 'string' && v !== '') out[k] = v;
  }
  return out;
}
