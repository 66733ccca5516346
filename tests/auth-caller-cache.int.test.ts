/**
 * The caller cache of the resource server (src/auth/caller-cache.ts): a token used once is answered from memory
 * afterwards, and every revocation, grant change or user change takes effect on the very next request in this process
 * and within a bounded wait in another instance (PostgreSQL LISTEN/NOTIFY, the NOTIFY triggers).
 * Two apps share the throwaway database like two facade replicas.
 */
import { spawnSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { tokenKey } from '../src/auth/caller-cache.ts';
import { mintAccessToken } from '../src/auth/server/tokens.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, ensureClient, ensureUser, grantPatient } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';

const tag = uniq('cc').replace(/[^A-Za-z0-9]/g, '');
const P = { a: `cca-${tag}`, b: `ccb-${tag}`, c: `ccc-${tag}`, d: `ccd-${tag}` };
const APP_CLIENT = 'cache-app';

let app: FastifyInstance;
let app2: FastifyInstance;
let db: pg.Client;

/** A writer outside the facade (what `bin/ehr` or an operator's psql does). */
async function externalSql(text: string, values: unknown[] = []): Promise<void> {
  await db.query(text, values);
}

async function doctorToken(username: string, patients: string[]): Promise<string> {
  const id = await ensureUser(app, { username, roles: ['doctor'] });
  for (const p of patients) await grantPatient(app, username, p);
  const minted = await mintAccessToken(app.authMint, { sub: id, clientId: APP_CLIENT, scope: 'user/*.rs' });
  return minted.token;
}

/**
 * After a committed write: waits until the NOTIFY reached this app and dropped the token's cached caller (the next
 * request then re-reads the database, which already has the write).
 */
async function invalidated(a: FastifyInstance, token: string): Promise<void> {
  while (a.authCallerCache.get(tokenKey(token)) !== undefined) await a.authCallerCache.nextClear();
}

const readPatient = (a: FastifyInstance, token: string, id: string) =>
  request(a.server).get(`/fhir/Patient/${id}`).set(bearer(token));

async function searchIds(token: string): Promise<string[]> {
  const res = await request(app.server)
    .get(`/fhir/Patient?_id=${Object.values(P).join(',')}`)
    .set(bearer(token));
  expect(res.status).toBe(200);
  return ((res.body.entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id).sort();
}

beforeAll(async () => {
  app = await testApp();
  app2 = await testApp();
  db = new pg.Client({ connectionString: inject('stack').databaseUrl });
  await db.connect();
  await ensureClient(app, { clientId: APP_CLIENT, kind: 'public', scope: 'user/*.rs', redirectUris: ['http://x/cb'] });
  const admin = bearer(await adminToken(app));
  for (const id of Object.values(P)) {
    const res = await request(app.server)
      .put(`/fhir/Patient/${id}`)
      .set(admin)
      .set('content-type', 'application/fhir+json')
      .send({ resourceType: 'Patient', id });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  }
});
afterAll(async () => {
  await db?.end();
  await app2?.close();
  await app?.close();
});

describe('revocation takes effect on the very next request', () => {
  test('through /auth/revoke', async () => {
    const token = await doctorToken(`cc-doc1-${tag}`, [P.a]);
    expect((await readPatient(app, token, P.a)).status).toBe(200);
    expect((await readPatient(app, token, P.a)).status).toBe(200); // answered from the cache
    const revoked = await request(app.server).post('/auth/revoke').type('form').send({ token, client_id: APP_CLIENT });
    expect(revoked.status).toBe(200);
    const after = await readPatient(app, token, P.a);
    expect(after.status).toBe(401);
    expect(after.headers['www-authenticate']).toMatch(/token revoked/);
  });

  test('through the database, as bin/ehr and other processes write (trigger + NOTIFY)', async () => {
    const token = await doctorToken(`cc-doc2-${tag}`, [P.a]);
    expect((await readPatient(app, token, P.a)).status).toBe(200);
    expect((await readPatient(app, token, P.a)).status).toBe(200);
    const { jti, exp } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
      jti: string;
      exp: number;
    };
    expect(app.authCallerCache.get(tokenKey(token)), 'cached before the change').toBeDefined();
    await externalSql('INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2))', [jti, exp]);
    await invalidated(app, token);
    const after = await readPatient(app, token, P.a);
    expect(after.status).toBe(401);
    expect(after.headers['www-authenticate']).toMatch(/token revoked/);
  });

  test('a deactivated user is refused on the next request although the token was cached', async () => {
    const token = await doctorToken(`cc-doc3-${tag}`, [P.a]);
    expect((await readPatient(app, token, P.a)).status).toBe(200);
    expect(app.authCallerCache.get(tokenKey(token)), 'cached before the change').toBeDefined();
    await externalSql('UPDATE users SET active = false WHERE username = $1', [`cc-doc3-${tag}`]);
    await invalidated(app, token);
    const after = await readPatient(app, token, P.a);
    expect(after.status).toBe(401);
    expect(after.headers['www-authenticate']).toMatch(/inactive/);
  });
});

describe('grant changes take effect on the very next request', () => {
  test('bin/ehr user revoke: the patient reads as 404 and leaves the search', async () => {
    const username = `cc-doc4-${tag}`;
    const token = await doctorToken(username, [P.b, P.c]);
    expect((await readPatient(app, token, P.b)).status).toBe(200);
    expect(await searchIds(token)).toEqual([P.b, P.c].sort());

    expect(app.authCallerCache.get(tokenKey(token)), 'cached before the change').toBeDefined();
    const stack = inject('stack');
    const cli = spawnSync('bin/ehr', ['user', 'revoke', username, P.b, '--by', 'test-admin'], {
      env: {
        PATH: process.env['PATH'],
        EHR_ENV_FILE: '/dev/null',
        EHR_STACK_DIR: '/nonexistent',
        EHR_DATABASE_URL: stack.databaseUrl,
        EHR_ORTHANC_PASSWORD: stack.orthancPassword,
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(cli.status, cli.stderr).toBe(0);
    await invalidated(app, token);

    expect((await readPatient(app, token, P.b)).status).toBe(404);
    expect(await searchIds(token)).toEqual([P.c]);
    expect((await readPatient(app, token, P.c)).status).toBe(200);
  });

  test('a new grant is visible on the next request', async () => {
    const username = `cc-doc5-${tag}`;
    const token = await doctorToken(username, [P.c]);
    expect((await readPatient(app, token, P.d)).status).toBe(404);
    expect(app.authCallerCache.get(tokenKey(token)), 'cached before the change').toBeDefined();
    await grantPatient(app, username, P.d);
    await invalidated(app, token);
    expect((await readPatient(app, token, P.d)).status).toBe(200);
  });
});

describe('a second instance', () => {
  test('sees a revocation done through the first one within a bounded wait', async () => {
    const token = await doctorToken(`cc-doc6-${tag}`, [P.a]);
    expect((await readPatient(app2, token, P.a)).status).toBe(200);
    expect((await readPatient(app2, token, P.a)).status).toBe(200);
    const revoked = await request(app.server).post('/auth/revoke').type('form').send({ token, client_id: APP_CLIENT });
    expect(revoked.status).toBe(200);
    let status = 0;
    for (let i = 0; i < 40 && status !== 401; i++) {
      status = (await readPatient(app2, token, P.a)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
  });
});

describe('a cached caller costs no database round trip', () => {
  test('20 repeated requests pass while the tables of caller resolution are locked; a new token waits on them', async () => {
    const token = await doctorToken(`cc-doc7-${tag}`, [P.a]);
    const fresh = await doctorToken(`cc-doc8-${tag}`, [P.a]);
    expect((await readPatient(app, token, P.a)).status).toBe(200);
    const locker = new pg.Client({ connectionString: inject('stack').databaseUrl });
    await locker.connect();
    const lockerPid = ((await locker.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE revoked_tokens, users, patient_grants IN ACCESS EXCLUSIVE MODE');
      for (let i = 0; i < 20; i++) expect((await readPatient(app, token, P.a)).status).toBe(200);

      // The control: an uncached token needs those tables and waits for the lock.
      const pending = readPatient(app, fresh, P.a).then((r) => r.status);
      let waiting = 0;
      for (let i = 0; i < 500 && waiting === 0; i++) {
        const r = await db.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1`,
          [lockerPid],
        );
        waiting = (r.rows[0] as { n: number }).n;
        if (waiting === 0) await new Promise((r) => setTimeout(r, 20));
      }
      expect(waiting).toBeGreaterThan(0);
      await locker.query('ROLLBACK');
      expect(await pending).toBe(200);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });
});

describe('fail safe', () => {
  test('losing the LISTEN connection turns the cache off until it listens again', async () => {
    expect(app.authCallerCache.enabled).toBe(true);
    await externalSql(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ehr-auth-listener'`,
    );
    // disable() turns the cache off before it clears; re-listening waits for the retry delay (1 s).
    while (app.authCallerCache.enabled) await app.authCallerCache.nextClear();
    expect(app.authCallerCache.enabled).toBe(false);
    expect(app.authCallerCache.size).toBe(0);
    for (let i = 0; i < 100 && !(app.authCallerCache.enabled && app2.authCallerCache.enabled); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(app.authCallerCache.enabled).toBe(true);
    expect(app2.authCallerCache.enabled).toBe(true);
  });
});
