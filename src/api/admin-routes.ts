/**
 * `/api/v1/me` and `/api/v1/admin/...`: what the staff web app needs beyond FHIR and DICOMweb. Thin routes over the
 * same tables and rules as `bin/ehr user|client` (src/cli/auth-command.ts), so that administration no longer needs the
 * CLI:
 *
 * - `GET  /api/v1/me` → the caller's kind, roles, fhirUser and patient context (any signed-in caller; the app hides what roles forbid)
 * - `GET  /api/v1/admin/users` → `{ items: [{ username, displayName, roles, active, practitionerId, department, grants }] }`
 * - `POST /api/v1/admin/users` `{ username, displayName, roles, practitionerId?, department?, patient? }` → the user
 *   and its initial password (shown once, as the CLI does); role `patient` alone, with `patient`, makes a patient login
 * - `GET  /api/v1/admin/users/{username}/grants` → `{ items: [{ patient, reason, grantedAt, expiresAt }] }` (live ones)
 * - `POST /api/v1/admin/users/{username}/grants` `{ patient, reason, expires? }` → 201
 * - `DELETE /api/v1/admin/users/{username}/grants/{patient}` → 204 (404 when no live grant)
 * - `POST /api/v1/admin/users/{username}/deactivate` → `{ username, active: false, changed }`; ends every token of the
 *   user (as `bin/ehr user deactivate`); an admin cannot deactivate themself (409)
 * - `POST /api/v1/admin/users/{username}/activate` → `{ username, active: true, changed }` (earlier tokens stay revoked)
 * - `PUT  /api/v1/admin/users/{username}/roles` `{ roles }` → `{ username, roles, previous, changed }`; effective on the
 *   user's next request; an admin cannot take the admin role from themself (409)
 * - `GET  /api/v1/admin/clients` → `{ items: [{ clientId, kind, name, scopeCeiling, allowedPatients, active, redirectUris }] }`
 * - `POST /api/v1/admin/clients` `{ clientId, kind, scopeCeiling, name?, redirectUris?, jwks?, jwksUri?,
 *   allowedPatients?, active? }` → 201 (409 when the id is taken), the rules of `bin/ehr client add`
 * - `PATCH /api/v1/admin/clients/{clientId}` (any member but clientId) → the client as stored (404 when unknown)
 *
 * Admin routes are for users with the `admin` role only (403 otherwise, 401 without a token), deny by default; every
 * call is audited by the audit plugin like any other `/api` request.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sql } from 'slonik';
import type { Access } from '../auth/access.ts';
import {
  ClientSpecError,
  changeClient,
  clientChangeFromBody,
  clientFromBody,
  registerClient,
  UnknownClientError,
} from '../auth/client-admin.ts';
import { ROLES } from '../auth/policy.ts';
import { hashPassword } from '../auth/server/passwords.ts';
import { activateUser, checkNewUserLink, deactivateUser, setUserRoles, UserSpecError } from '../auth/user-admin.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A refused admin request, with its HTTP status. */
export class AdminRequestError extends EhrError {
  override readonly code: ErrorCode = 'EHR_ADMIN_REQUEST';
  override name = 'AdminRequestError';
  constructor(status: number, message: string) {
    super(message);
    this.httpStatus = status;
  }
}

/** Whether the caller may administer users and clients: a user with the admin role (deny by default). */
export function mayAdminister(access: Access | null | undefined): boolean {
  return access?.kind === 'user' && access.agent.roles.includes('admin');
}

const NAME = { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' } as const;
const PATIENT = { type: 'string', pattern: '^[A-Za-z0-9.-]{1,64}$' } as const;

/** The signed-in admin's own user id (`sub` of a built-in server token); 403 for any other kind of admin token. */
async function adminIdOf(app: FastifyInstance, req: FastifyRequest): Promise<string> {
  const id = await app.db.maybeOneFirst(sql.unsafe`
    SELECT id::text FROM users WHERE id::text = ${req.access.agent.sub} AND active`);
  if (typeof id !== 'string') throw new AdminRequestError(403, 'grants need an admin who is a local user');
  return id;
}

/**
 * Refuses a JSON body with members the route does not know (Fastify's validator would silently drop them, and the
 * caller would believe e.g. a chosen password was taken): 400 naming them, before anything is written.
 */
function onlyKeys(allowed: readonly string[]) {
  return async (req: FastifyRequest) => {
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) throw new AdminRequestError(400, `unknown member(s): ${unknown.join(', ')}`);
  };
}

/** Deactivate/activate take no body: one sent anyway (other than `{}`) is a 400, nothing changes. */
async function noBody(req: FastifyRequest): Promise<void> {
  const b = req.body;
  if (b === undefined || b === null || (typeof b === 'object' && !Array.isArray(b) && Object.keys(b).length === 0))
    return;
  throw new AdminRequestError(400, 'this request takes no body');
}

/** The client rules' refusals as HTTP answers: a broken rule is 400, an unknown client 404. */
function rethrow(e: unknown): never {
  if (e instanceof ClientSpecError) throw new AdminRequestError(400, e.message);
  if (e instanceof UnknownClientError) throw new AdminRequestError(404, e.message);
  throw e;
}

function asAdminError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    return rethrow(e);
  }
}

async function userIdOf(app: FastifyInstance, username: string): Promise<string> {
  const id = await app.db.maybeOneFirst(sql.unsafe`SELECT id::text FROM users WHERE username = ${username}`);
  if (typeof id !== 'string') throw new AdminRequestError(404, `no user ${username}`);
  return id;
}

export async function meRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/v1/me', async (req) => {
    const access = req.access as Access | null | undefined;
    if (!access) throw new AdminRequestError(401, 'authentication required');
    return {
      kind: access.kind,
      sub: access.agent.sub,
      fhirUser: access.agent.fhirUser ?? null,
      roles: access.agent.roles,
      patient: access.patientContext ?? null,
      scopes: access.scopes ?? [],
    };
  });
}

export async function adminRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const access = req.access as Access | null | undefined;
    const allowed = mayAdminister(access);
    req.log.info(
      { authz: { decision: allowed ? 'allow' : 'deny', who: access?.agent.who, roles: access?.agent.roles } },
      'admin API: access decision',
    );
    if (!access) throw new AdminRequestError(401, 'authentication required');
    if (!allowed) throw new AdminRequestError(403, 'only admins may manage users and clients');
  });

  app.get('/api/v1/admin/users', async () => {
    const rows = await app.db.any(sql.unsafe`
      SELECT u.username, u.display_name AS "displayName", u.roles, u.active, u.practitioner_id AS "practitionerId",
             u.department, u.patient_id AS patient,
             (SELECT count(*) FROM patient_grants g WHERE g.user_id = u.id AND g.revoked_at IS NULL
                AND (g.expires_at IS NULL OR g.expires_at > now()))::int AS grants
      FROM users u ORDER BY u.username`);
    return { items: rows };
  });

  app.post<{
    Body: {
      username: string;
      displayName: string;
      roles: string[];
      practitionerId?: string;
      department?: string;
      patient?: string;
    };
  }>(
    '/api/v1/admin/users',
    {
      preValidation: onlyKeys(['username', 'displayName', 'roles', 'practitionerId', 'department', 'patient']),
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'displayName', 'roles'],
          properties: {
            username: NAME,
            displayName: { type: 'string', minLength: 1, maxLength: 200 },
            roles: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...ROLES] } },
            practitionerId: PATIENT,
            department: { type: 'string', pattern: '^Organization/[A-Za-z0-9.-]{1,64}$' },
            patient: PATIENT,
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      await checkNewUserLink(app.db, b).catch((e: unknown) => {
        throw e instanceof UserSpecError ? new AdminRequestError(e.statusCode, e.message) : e;
      });
      const password = randomBytes(18).toString('base64url');
      const inserted = await app.db.maybeOneFirst(sql.unsafe`
        INSERT INTO users (username, display_name, roles, password_hash, practitioner_id, department, patient_id)
        VALUES (${b.username}, ${b.displayName}, ${sql.array(b.roles, 'text')}, ${await hashPassword(password)},
                ${b.practitionerId ?? null}, ${b.department ?? null}, ${b.patient ?? null})
        ON CONFLICT DO NOTHING RETURNING id::text`);
      if (inserted === null) {
        const taken = await app.db.maybeOneFirst(sql.unsafe`SELECT 1 FROM users WHERE username = ${b.username}`);
        throw new AdminRequestError(
          409,
          taken === null ? `Patient/${b.patient} has a login already` : `user ${b.username} exists already`,
        );
      }
      return reply.code(201).send({
        username: b.username,
        roles: b.roles,
        ...(b.patient ? { patient: b.patient } : {}),
        initialPassword: password,
      });
    },
  );

  app.get<{ Params: { username: string } }>(
    '/api/v1/admin/users/:username/grants',
    { schema: { params: { type: 'object', properties: { username: NAME } } } },
    async (req) => {
      const id = await userIdOf(app, req.params.username);
      const rows = await app.db.any(sql.unsafe`
        SELECT g.patient_id AS patient, g.reason,
               to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "grantedAt",
               to_char(g.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "expiresAt"
        FROM patient_grants g WHERE g.user_id = ${id} AND g.revoked_at IS NULL
          AND (g.expires_at IS NULL OR g.expires_at > now())
        ORDER BY g.created_at DESC`);
      return { items: rows };
    },
  );

  app.post<{ Params: { username: string }; Body: { patient: string; reason: string; expires?: string } }>(
    '/api/v1/admin/users/:username/grants',
    {
      preValidation: onlyKeys(['patient', 'reason', 'expires']),
      schema: {
        params: { type: 'object', properties: { username: NAME } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['patient', 'reason'],
          properties: {
            patient: PATIENT,
            reason: { type: 'string', minLength: 1, maxLength: 500 },
            expires: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}(T[0-9:.]+(Z|[+-]\\d{2}:\\d{2}))?$' },
          },
        },
      },
    },
    async (req, reply) => {
      const id = await userIdOf(app, req.params.username);
      const by = await adminIdOf(app, req);
      const exists = await app.db.maybeOneFirst(sql.unsafe`
        SELECT 1 FROM patients WHERE id = ${req.body.patient} AND NOT deleted`);
      if (exists === null) throw new AdminRequestError(422, `no patient ${req.body.patient}`);
      await app.db.query(sql.unsafe`
        INSERT INTO patient_grants (user_id, patient_id, granted_by, reason, expires_at)
        VALUES (${id}, ${req.body.patient}, ${by}, ${req.body.reason},
                ${req.body.expires ?? null}::timestamptz)`);
      return reply.code(201).send({ username: req.params.username, patient: req.body.patient });
    },
  );

  app.delete<{ Params: { username: string; patient: string } }>(
    '/api/v1/admin/users/:username/grants/:patient',
    { schema: { params: { type: 'object', properties: { username: NAME, patient: PATIENT } } } },
    async (req, reply) => {
      const id = await userIdOf(app, req.params.username);
      const by = await adminIdOf(app, req);
      const r = await app.db.query(sql.unsafe`
        UPDATE patient_grants SET revoked_at = now(), revoked_by = ${by}
        WHERE user_id = ${id} AND patient_id = ${req.params.patient} AND revoked_at IS NULL`);
      if (r.rowCount === 0) throw new AdminRequestError(404, 'no live grant');
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { username: string } }>(
    '/api/v1/admin/users/:username/deactivate',
    { preValidation: noBody, schema: { params: { type: 'object', properties: { username: NAME } } } },
    async (req) => {
      const id = await userIdOf(app, req.params.username);
      const by = await adminIdOf(app, req);
      if (by === id) throw new AdminRequestError(409, 'an admin cannot deactivate themself');
      const changed = await deactivateUser(app.db, id);
      return { username: req.params.username, active: false, changed };
    },
  );

  app.post<{ Params: { username: string } }>(
    '/api/v1/admin/users/:username/activate',
    { preValidation: noBody, schema: { params: { type: 'object', properties: { username: NAME } } } },
    async (req) => {
      const id = await userIdOf(app, req.params.username);
      await adminIdOf(app, req);
      const changed = await activateUser(app.db, id);
      return { username: req.params.username, active: true, changed };
    },
  );

  app.put<{ Params: { username: string }; Body: { roles: string[] } }>(
    '/api/v1/admin/users/:username/roles',
    {
      preValidation: onlyKeys(['roles']),
      schema: {
        params: { type: 'object', properties: { username: NAME } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['roles'],
          properties: { roles: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...ROLES] } } },
        },
      },
    },
    async (req) => {
      const id = await userIdOf(app, req.params.username);
      const by = await adminIdOf(app, req);
      // An admin removing their own admin role could leave nobody to administer: refused, as self-deactivation is.
      if (by === id && !req.body.roles.includes('admin'))
        throw new AdminRequestError(409, 'an admin cannot take the admin role from themself');
      const { before, changed } = await setUserRoles(app.db, id, req.body.roles).catch((e: unknown) => {
        throw e instanceof UserSpecError ? new AdminRequestError(e.statusCode, e.message) : e;
      });
      return { username: req.params.username, roles: req.body.roles, previous: before, changed };
    },
  );

  app.post('/api/v1/admin/clients', async (req, reply) => {
    const spec = asAdminError(() => clientFromBody(req.body));
    const added = await registerClient(app.db, spec).catch(rethrow);
    if (!added) throw new AdminRequestError(409, `client ${spec.clientId} exists already`);
    return reply.code(201).send(spec);
  });

  app.patch<{ Params: { clientId: string } }>(
    '/api/v1/admin/clients/:clientId',
    { schema: { params: { type: 'object', properties: { clientId: { type: 'string', maxLength: 128 } } } } },
    async (req) => {
      const change = asAdminError(() => clientChangeFromBody(req.body));
      return changeClient(app.db, req.params.clientId, change).catch(rethrow);
    },
  );

  app.get('/api/v1/admin/clients', async () => {
    const rows = await app.db.any(sql.unsafe`
      SELECT client_id AS "clientId", kind, name, scope_ceiling AS "scopeCeiling",
             allowed_patients AS "allowedPatients", active, redirect_uris AS "redirectUris"
      FROM oauth_clients ORDER BY client_id`);
    return { items: rows };
  });
}
