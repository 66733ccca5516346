/** Reads of users and OAuth clients shared by the resource server, the authorization server and the CLI. */
import type { JSONWebKeySet } from 'jose';
import { type DatabasePool, sql } from 'slonik';
import type { UserRecord } from './patient-sets.ts';

export type ClientKind = 'public' | 'confidential' | 'backend';

export interface ClientRecord {
  readonly clientId: string;
  readonly name: string;
  readonly kind: ClientKind;
  readonly redirectUris: readonly string[];
  readonly jwks: JSONWebKeySet | null;
  readonly jwksUri: string | null;
  readonly scopeCeiling: string;
  /** null = all patients. */
  readonly allowedPatients: readonly string[] | null;
  readonly active: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface UserRow {
  id: string;
  username: string;
  roles: string[];
  practitioner_id: string | null;
  department: string | null;
  patient_id: string | null;
  active: boolean;
  tokens_not_before: number | null;
}

/** The columns of {@link UserRow}. */
const USER_COLUMNS = sql.fragment`id, username, roles, practitioner_id, department, patient_id, active,
  extract(epoch FROM tokens_not_before)::float8 AS tokens_not_before`;

function toUser(r: UserRow): UserRecord {
  return {
    id: r.id,
    username: r.username,
    roles: r.roles,
    practitionerId: r.practitioner_id,
    department: r.department,
    patientId: r.patient_id,
    active: r.active,
    tokensNotBefore: r.tokens_not_before === null ? null : Math.floor(Number(r.tokens_not_before)),
  };
}

export async function userById(db: DatabasePool, id: string): Promise<UserRecord | undefined> {
  if (!UUID.test(id)) return undefined;
  const r = (await db.maybeOne(sql.unsafe`
    SELECT ${USER_COLUMNS} FROM users WHERE id = ${id}`)) as UserRow | null;
  return r ? toUser(r) : undefined;
}

export async function userByUsername(
  db: DatabasePool,
  username: string,
): Promise<(UserRecord & { passwordHash: string | null }) | undefined> {
  const r = (await db.maybeOne(sql.unsafe`
    SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = ${username}`)) as
    | (UserRow & { password_hash: string | null })
    | null;
  return r ? { ...toUser(r), passwordHash: r.password_hash } : undefined;
}

export async function userByExternalIdentity(
  db: DatabasePool,
  issuer: string,
  subject: string,
): Promise<UserRecord | undefined> {
  const r = (await db.maybeOne(sql.unsafe`
    SELECT ${USER_COLUMNS} FROM users
    WHERE external_issuer = ${issuer} AND external_subject = ${subject}`)) as UserRow | null;
  return r ? toUser(r) : undefined;
}

export async function clientById(db: DatabasePool, clientId: string): Promise<ClientRecord | undefined> {
  if (clientId.length > 128) return undefined;
  const r = (await db.maybeOne(sql.unsafe`
    SELECT client_id, name, kind, redirect_uris, jwks, jwks_uri, scope_ceiling, allowed_patients, active
    FROM oauth_clients WHERE client_id = ${clientId}`)) as {
    client_id: string;
    name: string;
    kind: ClientKind;
    redirect_uris: string[];
    jwks: JSONWebKeySet | null;
    jwks_uri: string | null;
    scope_ceiling: string;
    allowed_patients: string[] | null;
    active: boolean;
  } | null;
  if (!r) return undefined;
  return {
    clientId: r.client_id,
    name: r.name,
    kind: r.kind,
    redirectUris: r.redirect_uris,
    jwks: r.jwks,
    jwksUri: r.jwks_uri,
    scopeCeiling: r.scope_ceiling,
    allowedPatients: r.allowed_patients,
    active: r.active,
  };
}

export async function isRevoked(db: DatabasePool, jti: string): Promise<boolean> {
  const r = await db.maybeOne(sql.unsafe`SELECT 1 AS x FROM revoked_tokens WHERE jti = ${jti}`);
  return r !== null;
}
