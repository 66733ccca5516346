/**
 * Real tokens for integration tests, minted with the built-in authorization server's own signing key (the same code
 * path as `bin/ehr token`). The resource server checks the user or client behind each token in the database, so the
 * helpers create those first.
 *
 *   const app = await testApp();
 *   await request(app.server).get('/fhir/Patient').set(bearer(await adminToken(app)));
 */
import type { FastifyInstance } from 'fastify';
import { type JWTPayload, SignJWT } from 'jose';
import { sql } from 'slonik';
import { mintLocalToken } from '../../src/auth/local-token.ts';
import type { Role } from '../../src/auth/policy.ts';
import { hashPassword } from '../../src/auth/server/passwords.ts';

export interface TestUser {
  username: string;
  roles: Role[];
  password?: string;
  practitionerId?: string;
  department?: string;
  /** The Patient a patient login (role `patient`) stands for. */
  patientId?: string;
}

/** Creates (or updates) a user; returns its id. */
export async function ensureUser(app: FastifyInstance, u: TestUser): Promise<string> {
  const hash = u.password ? await hashPassword(u.password) : null;
  const row = (await app.db.one(sql.unsafe`
    INSERT INTO users (username, display_name, roles, password_hash, practitioner_id, department, patient_id)
    VALUES (${u.username}, ${u.username}, ${sql.array(u.roles, 'text')}, ${hash}, ${u.practitionerId ?? null},
            ${u.department ?? null}, ${u.patientId ?? null})
    ON CONFLICT (username) DO UPDATE SET roles = EXCLUDED.roles,
      password_hash = coalesce(EXCLUDED.password_hash, users.password_hash),
      practitioner_id = EXCLUDED.practitioner_id, department = EXCLUDED.department,
      patient_id = EXCLUDED.patient_id, active = true
    RETURNING id`)) as { id: string };
  return row.id;
}

/** Grants `username` access to a patient (granted by the test admin). */
export async function grantPatient(app: FastifyInstance, username: string, patientId: string): Promise<void> {
  const admin = await ensureUser(app, { username: 'test-admin', roles: ['admin'] });
  await app.db.query(sql.unsafe`
    INSERT INTO patient_grants (user_id, patient_id, granted_by, reason)
    SELECT id, ${patientId}, ${admin}, 'test' FROM users WHERE username = ${username}
    ON CONFLICT DO NOTHING`);
}

export interface TestClient {
  clientId: string;
  kind?: 'public' | 'confidential' | 'backend';
  scope: string;
  patients?: string[] | null;
  jwks?: unknown;
  jwksUri?: string;
  redirectUris?: string[];
}

export async function ensureClient(app: FastifyInstance, c: TestClient): Promise<void> {
  const kind = c.kind ?? 'backend';
  const jwks =
    c.jwks ?? (kind === 'public' || c.jwksUri ? null : { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] });
  await app.db.query(sql.unsafe`
    INSERT INTO oauth_clients (client_id, name, kind, redirect_uris, jwks, jwks_uri, scope_ceiling, allowed_patients)
    VALUES (${c.clientId}, ${c.clientId}, ${kind}, ${sql.array(c.redirectUris ?? [], 'text')},
            ${jwks === null ? null : sql.jsonb(jwks as never)}, ${c.jwksUri ?? null}, ${c.scope},
            ${c.patients ? sql.array(c.patients, 'text') : null})
    ON CONFLICT (client_id) DO UPDATE SET kind = EXCLUDED.kind, redirect_uris = EXCLUDED.redirect_uris,
      jwks = EXCLUDED.jwks, jwks_uri = EXCLUDED.jwks_uri, scope_ceiling = EXCLUDED.scope_ceiling,
      allowed_patients = EXCLUDED.allowed_patients, active = true`);
}

export type TokenRequest =
  | { user: TestUser; scope: string; patient?: string; ttlS?: number }
  | { client: TestClient; scope?: string; ttlS?: number };

/** A real access token for a user (created if needed) or a backend client (registered if needed). */
export async function tokenFor(app: FastifyInstance, r: TokenRequest): Promise<string> {
  if ('user' in r) {
    await ensureUser(app, r.user);
    const minted = await mintLocalToken(app.db, app.authMint, {
      username: r.user.username,
      scope: r.scope,
      ...(r.patient !== undefined ? { patient: r.patient } : {}),
      ...(r.ttlS !== undefined ? { ttlS: r.ttlS } : {}),
    });
    return minted.token;
  }
  await ensureClient(app, r.client);
  const minted = await mintLocalToken(app.db, app.authMint, {
    clientId: r.client.clientId,
    scope: r.scope ?? r.client.scope,
    ...(r.ttlS !== undefined ? { ttlS: r.ttlS } : {}),
  });
  return minted.token;
}

/** An admin user's token with `user/*.cruds`: sees and may change everything. */
export async function adminToken(app: FastifyInstance): Promise<string> {
  return tokenFor(app, { user: { username: 'test-admin', roles: ['admin'] }, scope: 'user/*.cruds' });
}

/** `{ authorization: 'Bearer …' }` for supertest's `.set()` or inject's `headers`. */
export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

/** Signs arbitrary claims with the server's real signing key (for attack tests). */
export async function signWithServerKey(
  app: FastifyInstance,
  claims: JWTPayload & Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const key = await app.authKeys.signingKey();
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.key);
}
