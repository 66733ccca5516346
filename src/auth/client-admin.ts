/**
 * Registering and changing OAuth clients of the built-in authorization server, shared by `bin/ehr client add` and the
 * admin API (`/api/v1/admin/clients`): one set of rules, checked before anything is written. Each change is committed
 * with NOTIFY triggers (auth-change-listener.ts), which tell every facade process to drop its caller cache.
 */
import { type DatabasePool, sql } from 'slonik';
import { parseScopes } from './scopes.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export const CLIENT_KINDS = ['public', 'confidential', 'backend'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

/** A client as registered (the columns of `oauth_clients` an administrator sets). */
export interface ClientSpec {
  readonly clientId: string;
  readonly name: string;
  readonly kind: ClientKind;
  readonly redirectUris: readonly string[];
  readonly scopeCeiling: string;
  /** Public keys (JWKS, RFC 7517 §5) for `private_key_jwt`; or `jwksUri`. */
  readonly jwks: { keys: Record<string, unknown>[] } | null;
  readonly jwksUri: string | null;
  /** Backend clients: the patients they may reach (`null`: all). */
  readonly allowedPatients: readonly string[] | null;
  readonly active: boolean;
}

/** A client registration that breaks a rule; nothing was written. */
export class ClientSpecError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUTH_CLIENT_SPEC';
  override name = 'ClientSpecError';
}

/** A change to a client that does not exist. */
export class UnknownClientError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUTH_UNKNOWN_CLIENT';
  override name = 'UnknownClientError';
}

const CLIENT_ID = /^[A-Za-z0-9._~-]{1,128}$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Whether a redirect URI may be registered: absolute, without a fragment (RFC 6749 §3.1.2), https, or http on a
 * loopback host only (RFC 8252 §7.3, OAuth 2.0 Security BCP §4.1).
 */
function redirectProblem(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `redirect URI ${uri} is not an absolute URL`;
  }
  if (u.hash !== '' || uri.includes('#')) return `redirect URI ${uri} must not have a fragment`;
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:' && LOOPBACK.has(u.hostname)) return undefined;
  return `redirect URI ${uri} must be https (http only on localhost)`;
}

/** Every rule a client breaks, in words (empty when it may be registered as it is). */
export function clientProblems(c: ClientSpec): string[] {
  const out: string[] = [];
  if (!CLIENT_ID.test(c.clientId)) out.push('clientId must be 1-128 of A-Z a-z 0-9 . _ ~ -');
  if (c.name.trim() === '' || c.name.length > 200) out.push('name must have 1-200 characters');
  if (!CLIENT_KINDS.includes(c.kind)) out.push(`kind must be one of ${CLIENT_KINDS.join(', ')}`);
  for (const r of c.redirectUris) {
    const p = redirectProblem(r);
    if (p) out.push(p);
  }
  if (new Set(c.redirectUris).size !== c.redirectUris.length) out.push('redirect URIs repeat');
  if (c.kind === 'backend' && c.redirectUris.length > 0) out.push('a backend client has no redirect URIs');
  if (c.kind !== 'backend' && c.redirectUris.length === 0) out.push(`a ${c.kind} client needs a redirect URI`);
  const scopes = parseScopes(c.scopeCeiling);
  if (c.scopeCeiling.trim() === '') out.push('the scope ceiling is empty');
  if (scopes.unknown.length > 0) out.push(`unknown scope(s): ${scopes.unknown.join(' ')}`);
  const keyed = c.jwks !== null || c.jwksUri !== null;
  if (c.kind === 'public' && keyed) out.push('a public client has no keys');
  if (c.kind !== 'public' && !keyed) out.push(`a ${c.kind} client needs jwks or jwksUri (private_key_jwt)`);
  if (c.jwks !== null && c.jwksUri !== null) out.push('give jwks or jwksUri, not both');
  if (c.jwks !== null) {
    if (!Array.isArray(c.jwks.keys) || c.jwks.keys.length === 0) out.push('jwks must be a JWKS with keys');
    else if (c.jwks.keys.some((k) => k === null || typeof k !== 'object' || typeof k['kty'] !== 'string')) {
      out.push('every JWKS key needs kty');
    } else if (c.jwks.keys.some((k) => k['d'] !== undefined)) {
      out.push('jwks contains private keys; register public keys only');
    }
  }
  if (c.jwksUri !== null && !/^https:\/\/[^\s]+$/.test(c.jwksUri)) out.push('jwksUri must be an https URL');
  if (c.allowedPatients !== null && c.kind !== 'backend') out.push('only backend clients have allowed patients');
  return out;
}

function check(c: ClientSpec): void {
  const problems = clientProblems(c);
  if (problems.length > 0) throw new ClientSpecError(problems.join('; '));
}

/** Registers a client after checking it; false when the client id is taken (nothing written). */
export async function registerClient(db: DatabasePool, c: ClientSpec): Promise<boolean> {
  check(c);
  const id = await db.maybeOneFirst(sql.unsafe`
    INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, jwks, jwks_uri, scope_ceiling, allowed_patients,
                               active)
    VALUES (${c.clientId}, ${c.name}, ${c.kind}, ${sql.array([...c.redirectUris], 'text')},
            ${c.jwks === null ? null : sql.jsonb(c.jwks as never)}, ${c.jwksUri}, ${c.scopeCeiling},
            ${c.allowedPatients === null ? null : sql.array([...c.allowedPatients], 'text')}, ${c.active})
    ON CONFLICT (client_id) DO NOTHING RETURNING client_id`);
  return id !== null;
}

/** What an administrator may change of a client (everything but its id). */
export type ClientChange = Partial<Omit<ClientSpec, 'clientId'>>;

/**
 * Changes a client: the change is applied to the stored client and the result checked as a whole (e.g. a public
 * client turned confidential needs keys), in one transaction. Returns the client as stored.
 */
export async function changeClient(db: DatabasePool, clientId: string, change: ClientChange): Promise<ClientSpec> {
  return db.transaction(async (tx) => {
    const row = await tx.maybeOne(sql.unsafe`
      SELECT client_id AS "clientId", name, kind, redirect_uris AS "redirectUris", jwks, jwks_uri AS "jwksUri",
             scope_ceiling AS "scopeCeiling", allowed_patients AS "allowedPatients", active
      FROM oauth_clients WHERE client_id = ${clientId} FOR UPDATE`);
    if (row === null) throw new UnknownClientError(`no client ${clientId}`);
    const next = { ...(row as unknown as ClientSpec), ...change };
    check(next);
    await tx.query(sql.unsafe`
      UPDATE oauth_clients SET name = ${next.name}, kind = ${next.kind},
        redirect_uris = ${sql.array([...next.redirectUris], 'text')},
        jwks = ${next.jwks === null ? null : sql.jsonb(next.jwks as never)}, jwks_uri = ${next.jwksUri},
        scope_ceiling = ${next.scopeCeiling},
        allowed_patients = ${next.allowedPatients === null ? null : sql.array([...next.allowedPatients], 'text')},
        active = ${next.active}
      WHERE client_id = ${clientId}`);
    return next;
  });
}

type Member = 'string' | 'strings' | 'boolean' | 'jwks' | 'kind' | 'strings-or-null' | 'string-or-null';
const MEMBERS: Readonly<Record<keyof ClientSpec, Member>> = {
  clientId: 'string',
  name: 'string',
  kind: 'kind',
  redirectUris: 'strings',
  scopeCeiling: 'string',
  jwks: 'jwks',
  jwksUri: 'string-or-null',
  allowedPatients: 'strings-or-null',
  active: 'boolean',
};

function typeOk(kind: Member, v: unknown): boolean {
  const strings = (x: unknown) => Array.isArray(x) && x.length <= 50 && x.every((s) => typeof s === 'string');
  switch (kind) {
    case 'string':
      return typeof v === 'string' && v.length <= 4000;
    case 'string-or-null':
      return v === null || (typeof v === 'string' && v.length <= 2000);
    case 'kind':
      return typeof v === 'string' && (CLIENT_KINDS as readonly string[]).includes(v);
    case 'strings':
      return strings(v);
    case 'strings-or-null':
      return v === null || strings(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'jwks':
      return v === null || (typeof v === 'object' && !Array.isArray(v));
  }
}

/**
 * Reads a JSON body for a client exactly as sent: unknown members, wrong types (no coercion: `"true"` is not a
 * boolean) and missing required members are refused with a ClientSpecError naming them.
 */
function readMembers(body: unknown, allowed: readonly (keyof ClientSpec)[]): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ClientSpecError('the body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !(allowed as readonly string[]).includes(k));
  if (unknown.length > 0) throw new ClientSpecError(`unknown member(s): ${unknown.join(', ')}`);
  const wrong = Object.keys(b).filter((k) => !typeOk(MEMBERS[k as keyof ClientSpec], b[k]));
  if (wrong.length > 0) throw new ClientSpecError(`wrong type or value: ${wrong.join(', ')}`);
  return b;
}

/** A new client from `POST /api/v1/admin/clients`: clientId, kind and scopeCeiling required. */
export function clientFromBody(body: unknown): ClientSpec {
  const b = readMembers(body, Object.keys(MEMBERS) as (keyof ClientSpec)[]);
  const missing = ['clientId', 'kind', 'scopeCeiling'].filter((k) => b[k] === undefined);
  if (missing.length > 0) throw new ClientSpecError(`missing member(s): ${missing.join(', ')}`);
  const spec: ClientSpec = {
    clientId: b['clientId'] as string,
    name: (b['name'] as string | undefined) ?? (b['clientId'] as string),
    kind: b['kind'] as ClientKind,
    redirectUris: (b['redirectUris'] as string[] | undefined) ?? [],
    scopeCeiling: b['scopeCeiling'] as string,
    jwks: (b['jwks'] as ClientSpec['jwks'] | undefined) ?? null,
    jwksUri: (b['jwksUri'] as string | null | undefined) ?? null,
    allowedPatients: (b['allowedPatients'] as string[] | null | undefined) ?? null,
    active: (b['active'] as boolean | undefined) ?? true,
  };
  check(spec);
  return spec;
}

/** A change from `PATCH /api/v1/admin/clients/{id}`: any member but clientId, at least one. */
export function clientChangeFromBody(body: unknown): ClientChange {
  const b = readMembers(
    body,
    (Object.keys(MEMBERS) as (keyof ClientSpec)[]).filter((k) => k !== 'clientId'),
  );
  if (Object.keys(b).length === 0) throw new ClientSpecError('nothing to change');
  return b as ClientChange;
}
