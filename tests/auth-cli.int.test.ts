import { spawnSync } from 'node:child_process';
import { generateKeyPair, exportJWK } from 'jose';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { tokenKey } from '../src/auth/caller-cache.ts';
import { testConfig } from './helpers/app.ts';
import { bearer } from './helpers/auth.ts';
import type { RouteRules } from '../src/http/route-rules.ts';

/** A test route: any token, not audited (it discloses nothing). */
const TEST_RULES: RouteRules = { who: 'token', audit: { none: 'test route' }, dialect: 'plain' };

/** `bin/ehr user|client|token` against the throwaway database. */
function ehr(args: string[], env: Record<string, string> = {}, input?: string) {
  const stack = inject('stack');
  const res = spawnSync('bin/ehr', args, {
    env: {
      PATH: process.env['PATH'],
      EHR_ENV_FILE: '/dev/null',
      EHR_STACK_DIR: '/nonexistent',
      EHR_DATABASE_URL: stack.databaseUrl,
      EHR_ORTHANC_PASSWORD: stack.orthancPassword,
      ...env,
    },
    encoding: 'utf8',
    timeout: 30_000,
    ...(input !== undefined ? { input } : {}),
  });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildApp(testConfig());
  app.get('/test/cli-whoami', { config: { rules: TEST_RULES } }, async (req) =>
    req.access.patientFilter('read', 'Patient'),
  );
  await app.ready();
});
afterAll(async () => {
  await app.close();
});

describe('bin/ehr user, client and token', () => {
  test('add an admin and a doctor, grant a patient, mint a development token that sees only that patient', async () => {
    expect(ehr(['user', 'add', 'cli-admin', '--role', 'admin']).code).toBe(0);
    const added = ehr(
      ['user', 'add', 'cli-doc', '--display-name', 'Dr CLI', '--role', 'doctor', '--password-stdin'],
      {},
      'a long enough password\n',
    );
    expect(added.code, added.err).toBe(0);
    expect(ehr(['user', 'grant', 'cli-doc', 'cli-pat-1', '--reason', 'attending', '--by', 'cli-doc']).err).toMatch(
      /not an admin/,
    );
    expect(ehr(['user', 'grant', 'cli-doc', 'cli-pat-1', '--reason', 'attending', '--by', 'cli-admin']).code).toBe(0);

    const minted = ehr(['token', '--user', 'cli-doc', '--scope', 'user/*.rs']);
    expect(minted.code, minted.err).toBe(0);
    expect(minted.err).toMatch(/development token/);
    const token = minted.out.trim();
    const res = await request(app.server).get('/test/cli-whoami').set(bearer(token));
    expect(res.body).toEqual({ all: false, patientIds: ['cli-pat-1'] });

    expect(ehr(['user', 'revoke', 'cli-doc', 'cli-pat-1', '--by', 'cli-admin']).code).toBe(0);
    const after = await request(app.server).get('/test/cli-whoami').set(bearer(token));
    expect(after.body).toEqual({ all: false, patientIds: [] });
  });

  test('client add with a JWKS file refuses private keys; a backend client gets a token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ehr-cli-'));
    const pair = await generateKeyPair('ES384', { extractable: true });
    writeFileSync(join(dir, 'private.json'), JSON.stringify({ keys: [await exportJWK(pair.privateKey)] }));
    writeFileSync(
      join(dir, 'public.json'),
      JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1' }] }),
    );
    const bad = ehr(['client', 'add', 'cli-backend', '--jwks', join(dir, 'private.json'), '--scope', 'system/*.rs']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/private keys/);
    const ok = ehr([
      'client',
      'add',
      'cli-backend',
      '--jwks',
      join(dir, 'public.json'),
      '--scope',
      'system/*.rs',
      '--patients',
      'p1,p2',
    ]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/backend client cli-backend/);
    const minted = ehr(['token', '--client', 'cli-backend', '--scope', 'system/*.rs']);
    expect(minted.code, minted.err).toBe(0);
  });

  test('user deactivate ends every token of the user; user activate revives none', async () => {
    expect(ehr(['user', 'add', 'cli-leaver', '--role', 'nurse']).code).toBe(0);
    const token = ehr(['token', '--user', 'cli-leaver', '--scope', 'user/*.rs']).out.trim();
    expect((await request(app.server).get('/test/cli-whoami').set(bearer(token))).status).toBe(200);
    expect(ehr(['user', 'deactivate', 'cli-admin', '--by', 'cli-admin']).err).toMatch(/cannot deactivate themself/);
    expect(ehr(['user', 'deactivate', 'cli-leaver', '--by', 'cli-doc']).err).toMatch(/not an admin/);
    const off = ehr(['user', 'deactivate', 'cli-leaver', '--by', 'cli-admin']);
    expect(off.code, off.err).toBe(0);
    while (app.authCallerCache.get(tokenKey(token)) !== undefined) await app.authCallerCache.nextClear();
    const refused = await request(app.server).get('/test/cli-whoami').set(bearer(token));
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/inactive/);
    expect(ehr(['user', 'activate', 'cli-leaver', '--by', 'cli-admin']).code).toBe(0);
    while (app.authCallerCache.get(tokenKey(token)) !== undefined) await app.authCallerCache.nextClear();
    const still = await request(app.server).get('/test/cli-whoami').set(bearer(token));
    expect(still.status).toBe(401);
    expect(still.headers['www-authenticate']).toMatch(/issued before/);
  });

  test('token refuses outside development mode and says so', () => {
    const res = ehr(['token', '--user', 'cli-doc', '--scope', 'user/*.rs'], { EHR_MODE: 'production' });
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/only in development mode/);
    expect(res.out).toBe('');
  });
});
