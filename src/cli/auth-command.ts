/**
 * `bin/ehr user|client|token|key`: administration of the built-in authorization server.
 *   user add NAME --display-name TEXT --role ROLE... [--practitioner ID] [--department REF] [--patient ID] [--password-stdin]
 *   user list
 *   user grant NAME PATIENT --reason TEXT --by ADMIN [--expires ISO-DATE]
 *   user revoke NAME PATIENT --by ADMIN
 *   user deactivate NAME --by ADMIN     (ends every token of the user)
 *   user activate NAME --by ADMIN
 *   client add ID --name TEXT (--public | --jwks FILE | --jwks-url URL) [--redirect-uri URI...] --scope SCOPES
 *                 [--patients ID,ID]
 *   client list
 *   token (--user NAME | --client ID) --scope SCOPES [--patient ID] [--ttl SECONDS]   development mode only
 *   key rotate | key list
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createPool, type DatabasePool, sql } from 'slonik';
import { loadConfig } from '../config/load-config.ts';
import type { Config } from '../config/spec.ts';
import { DevelopmentOnlyError, mintLocalToken } from '../auth/local-token.ts';
import { isRole } from '../auth/policy.ts';
import { authUrls } from '../auth/server/discovery.ts';
import { hashPassword } from '../auth/server/passwords.ts';
import { ensureActiveKey, KeyStore } from '../auth/signing-keys.ts';
import { userByUsername } from '../auth/store.ts';
import { activateUser, checkNewUserLink, deactivateUser, revokeGrant, UserSpecError } from '../auth/user-admin.ts';
import { type ClientSpec, ClientSpecError, registerClient } from '../auth/client-admin.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A wrong command line: the message is printed as is. */
export class UsageError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CLI_USAGE';
  override name = 'UsageError';
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function requireUser(db: DatabasePool, name: string | undefined, what: string) {
  if (!name) throw new UsageError(`${what} is required`);
  const u = await userByUsername(db, name);
  if (!u) throw new UsageError(`no user ${name}`);
  return u;
}

async function requireAdmin(db: DatabasePool, name: string | undefined) {
  const by = await requireUser(db, name, '--by');
  if (!by.roles.includes('admin') || !by.active) throw new UsageError(`${name} is not an admin (or is inactive)`);
  return by;
}

async function user(db: DatabasePool, args: string[]): Promise<number> {
  const { values: v, positionals: p } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      'display-name': { type: 'string' },
      role: { type: 'string', multiple: true },
      practitioner: { type: 'string' },
      department: { type: 'string' },
      patient: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      reason: { type: 'string' },
      by: { type: 'string' },
      expires: { type: 'string' },
    },
  });
  switch (p[0]) {
    case 'add': {
      const name = p[1];
      if (!name) throw new UsageError('user add NAME --display-name TEXT --role ROLE');
      const roles = v.role ?? [];
      if (roles.length === 0 || !roles.every(isRole)) {
        throw new UsageError('--role must be one or more of doctor, nurse, radiologist, auditor, admin, patient');
      }
      // A patient login: the patient role alone, standing for one existing Patient (the users table checks it too).
      const link = { roles, patient: v.patient, practitionerId: v.practitioner, department: v.department };
      await checkNewUserLink(db, link).catch((e: unknown) => {
        throw e instanceof UserSpecError ? new UsageError(`${e.message} (--role patient --patient ID)`) : e;
      });
      const generated = v['password-stdin'] ? undefined : randomBytes(18).toString('base64url');
      const password = generated ?? (await readStdin());
      if (password.length < 12) throw new UsageError('the password must have at least 12 characters');
      await db.query(sql.unsafe`
        INSERT INTO users (username, display_name, roles, password_hash, practitioner_id, department, patient_id)
        VALUES (${name}, ${v['display-name'] ?? name}, ${sql.array(roles, 'text')}, ${await hashPassword(password)},
                ${v.practitioner ?? null}, ${v.department ?? null}, ${v.patient ?? null})`);
      console.log(`user ${name} added with roles ${roles.join(', ')}`);
      if (generated) console.log(`initial password (shown once): ${generated}`);
      return 0;
    }
    case 'list': {
      const rows = (await db.any(sql.unsafe`
        SELECT u.username, u.roles, u.active, u.practitioner_id, u.department, u.patient_id,
               (SELECT count(*) FROM patient_grants g WHERE g.user_id = u.id AND g.revoked_at IS NULL
                  AND (g.expires_at IS NULL OR g.expires_at > now()))::int AS grants
        FROM users u ORDER BY u.username`)) as readonly Record<string, unknown>[];
      console.table(rows);
      return 0;
    }
    case 'grant': {
      const u = await requireUser(db, p[1], 'user');
      const patient = p[2];
      if (!patient || !v.reason) throw new UsageError('user grant NAME PATIENT --reason TEXT --by ADMIN');
      const by = await requireUser(db, v.by, '--by');
      if (!by.roles.includes('admin')) throw new UsageError(`${v.by} is not an admin`);
      await db.query(sql.unsafe`
        INSERT INTO patient_grants (user_id, patient_id, granted_by, reason, expires_at)
        VALUES (${u.id}, ${patient}, ${by.id}, ${v.reason}, ${v.expires ?? null}::timestamptz)`);
      console.log(`granted ${u.username} access to patient ${patient}${v.expires ? ` until ${v.expires}` : ''}`);
      return 0;
    }
    case 'revoke': {
      const u = await requireUser(db, p[1], 'user');
      const by = await requireAdmin(db, v.by);
      const revoked = await revokeGrant(db, u.id, p[2] ?? '', by.id);
      console.log(revoked ? `revoked ${u.username}'s access to patient ${p[2]}` : 'no live grant found');
      return revoked ? 0 : 1;
    }
    case 'deactivate': {
      const u = await requireUser(db, p[1], 'user');
      const by = await requireAdmin(db, v.by);
      if (by.id === u.id) throw new UsageError('an admin cannot deactivate themself');
      const changed = await deactivateUser(db, u.id);
      console.log(`${u.username} ${changed ? 'deactivated' : 'was already inactive'}; all their tokens are revoked`);
      return 0;
    }
    case 'activate': {
      const u = await requireUser(db, p[1], 'user');
      await requireAdmin(db, v.by);
      const changed = await activateUser(db, u.id);
      console.log(`${u.username} ${changed ? 'activated' : 'was already active'}`);
      return 0;
    }
  }
  throw new UsageError('usage: bin/ehr user add|list|grant|revoke|deactivate|activate ...');
}

async function client(db: DatabasePool, args: string[]): Promise<number> {
  const { values: v, positionals: p } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      public: { type: 'boolean' },
      jwks: { type: 'string' },
      'jwks-url': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      scope: { type: 'string' },
      patients: { type: 'string' },
    },
  });
  if (p[0] === 'list') {
    console.table(
      await db.any(sql.unsafe`
        SELECT client_id, kind, name, scope_ceiling, allowed_patients, active FROM oauth_clients ORDER BY client_id`),
    );
    return 0;
  }
  if (p[0] !== 'add' || !p[1] || !v.scope) {
    throw new UsageError('client add ID --name TEXT (--public | --jwks FILE | --jwks-url URL) --scope SCOPES');
  }
  const keysGiven = [v.public, v.jwks, v['jwks-url']].filter((x) => x !== undefined).length;
  if (keysGiven !== 1) throw new UsageError('give exactly one of --public, --jwks FILE, --jwks-url URL');
  let jwks: unknown = null;
  if (v.jwks) {
    jwks = JSON.parse(readFileSync(v.jwks, 'utf8'));
    const keys = (jwks as { keys?: { d?: unknown }[] }).keys;
    if (!Array.isArray(keys) || keys.length === 0) throw new UsageError(`${v.jwks} is not a JWKS`);
    if (keys.some((k) => k.d !== undefined))
      throw new UsageError(`${v.jwks} contains private keys; register public keys only`);
  }
  const redirects = v['redirect-uri'] ?? [];
  const kind = v.public ? 'public' : redirects.length > 0 ? 'confidential' : 'backend';
  const patients = v.patients ? v.patients.split(',').filter(Boolean) : null;
  try {
    const added = await registerClient(db, {
      clientId: p[1],
      name: v.name ?? p[1],
      kind,
      redirectUris: redirects,
      jwks: jwks as ClientSpec['jwks'],
      jwksUri: v['jwks-url'] ?? null,
      scopeCeiling: v.scope,
      allowedPatients: patients,
      active: true,
    });
    if (!added) throw new UsageError(`client ${p[1]} exists already`);
  } catch (e) {
    if (e instanceof ClientSpecError) throw new UsageError(e.message);
    throw e;
  }
  console.log(`${kind} client ${p[1]} added; scope ceiling: ${v.scope}; patients: ${patients?.join(', ') ?? 'all'}`);
  return 0;
}

async function token(db: DatabasePool, config: Config, args: string[]): Promise<number> {
  if (config.mode !== 'development') {
    throw new DevelopmentOnlyError(
      'bin/ehr token works only in development mode (EHR_MODE=development); use an OAuth flow in production',
    );
  }
  const { values: v } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      client: { type: 'string' },
      scope: { type: 'string' },
      patient: { type: 'string' },
      ttl: { type: 'string' },
    },
  });
  if (!v.scope) throw new UsageError('token (--user NAME | --client ID) --scope SCOPES [--patient ID] [--ttl SECONDS]');
  const keys = new KeyStore(db, { alg: config.authSigningAlg, rotationDays: config.authKeyRotationDays, graceS: 0 });
  const mint = { keys, urls: authUrls(config.publicBaseUrl), accessTokenTtlS: config.authAccessTokenTtlS };
  const minted = await mintLocalToken(db, mint, {
    ...(v.user ? { username: v.user } : {}),
    ...(v.client ? { clientId: v.client } : {}),
    scope: v.scope,
    ...(v.patient ? { patient: v.patient } : {}),
    ...(v.ttl ? { ttlS: Number(v.ttl) } : {}),
  });
  console.error(`development token, valid ${minted.expiresIn} s (EHR_MODE=development):`);
  console.log(minted.token);
  return 0;
}

async function key(db: DatabasePool, config: Config, args: string[]): Promise<number> {
  if (args[0] === 'rotate') {
    const k = await ensureActiveKey(db, config.authSigningAlg, config.authKeyRotationDays, true);
    console.log(`new signing key ${k.kid} (${k.alg}); the previous key stays published until its tokens expire`);
    return 0;
  }
  if (args[0] === 'list') {
    console.table(
      await db.any(
        sql.unsafe`SELECT kid, alg, created_at::text, retired_at::text FROM signing_keys ORDER BY created_at`,
      ),
    );
    return 0;
  }
  throw new UsageError('usage: bin/ehr key rotate|list');
}

/** Runs one of the authorization commands against the configured database. */
export async function authCommand(cmd: string, args: string[]): Promise<number> {
  const config = loadConfig(process.env);
  if (cmd === 'token' && config.mode !== 'development') {
    throw new DevelopmentOnlyError(
      'bin/ehr token works only in development mode (EHR_MODE=development); use an OAuth flow in production',
    );
  }
  const db = await createPool(config.databaseUrl, { maximumPoolSize: 2 });
  try {
    if (cmd === 'user') return await user(db, args);
    if (cmd === 'client') return await client(db, args);
    if (cmd === 'token') return await token(db, config, args);
    return await key(db, config, args);
  } finally {
    await db.end();
  }
}
