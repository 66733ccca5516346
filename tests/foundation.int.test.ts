import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { latestMigrationVersion } from '../src/db/migrate.ts';
import { startOrthanc, stopOrthanc } from '../src/stack/orthanc.ts';
import {
  databaseUrl,
  ensureRoleAndDatabase,
  initCluster,
  type PgCluster,
  psql,
  startCluster,
  stopCluster,
} from '../src/stack/postgres.ts';
import { stackUp } from '../src/stack/stack.ts';
import { freePort } from '../src/stack/process.ts';
import { testApp } from './helpers/app.ts';

describe('health against the real stack', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await testApp();
  });
  afterAll(async () => {
    await app.close();
  });

  test('GET /healthz is 200 while the process runs', async () => {
    const res = await request(app.server).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  test('GET /readyz is 200 with the real Orthanc version and the current migration level', async () => {
    const res = await request(app.server).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.checks.orthanc).toMatchObject({ ok: true, version: '1.10.1' });
    expect(res.body.checks.orthanc.database).toMatch(/PostgreSQL/);
    expect(res.body.checks.database.version).toMatch(/^15\./);
    const latest = await latestMigrationVersion();
    expect(latest).toBeGreaterThan(0);
    expect(res.body.checks.database.migration).toEqual({ current: latest, latest });
  });

  test('every response carries a request id, and a sane incoming one is kept', async () => {
    const res = await request(app.server).get('/healthz').set('x-request-id', 'abc-123');
    expect(res.headers['x-request-id']).toBe('abc-123');
    const generated = await request(app.server).get('/healthz').set('x-request-id', 'bad id with spaces');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('Orthanc is on the PostgreSQL plugins: its tables live in the orthanc database, not the EHR one', async () => {
    const stack = inject('stack');
    const tables = await psql(
      { dir: stack.pg.dir, port: stack.pg.port, fsync: false },
      "SELECT count(*) FROM pg_tables WHERE tablename = 'resources'",
      'orthanc',
    );
    expect(Number(tables.trim())).toBe(1);
    const ehr = new pg.Client({ connectionString: stack.databaseUrl });
    await ehr.connect();
    const { rows } = await ehr.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'resources'");
    await ehr.end();
    expect(rows[0].n).toBe(0);
  });

  test('the EHR role cannot open the Orthanc database (separate roles and passwords)', async () => {
    const stack = inject('stack');
    const url = stack.databaseUrl.replace(/\/ehr$/, '/orthanc');
    const client = new pg.Client({ connectionString: url });
    await expect(client.connect()).rejects.toThrow(/permission denied|not permitted/);
  });
});

describe('Orthanc stopped while the facade runs', () => {
  // A private Orthanc on its own database, so that stopping it does not disturb other tests.
  let app: FastifyInstance;
  let orthanc: Parameters<typeof startOrthanc>[0];

  beforeAll(async () => {
    const stack = inject('stack');
    const cluster = { dir: stack.pg.dir, port: stack.pg.port, fsync: false };
    await ensureRoleAndDatabase(cluster, 'orthanc_fault', 'fault-pw');
    const dir = join(stack.dataDir, 'orthanc-fault');
    mkdirSync(dir, { recursive: true });
    orthanc = {
      dir,
      httpPort: await freePort(),
      dicomPort: await freePort(),
      aet: 'FAULT',
      username: 'facade',
      password: 'fault-http-pw',
      db: {
        host: '127.0.0.1',
        port: stack.pg.port,
        database: 'orthanc_fault',
        username: 'orthanc_fault',
        password: 'fault-pw',
      },
    };
    await startOrthanc(orthanc);
    app = await testApp({
      orthancUrl: `http://127.0.0.1:${orthanc.httpPort}`,
      orthancPassword: orthanc.password,
      readyTimeoutMs: 500,
    });
  });
  afterAll(async () => {
    await app.close();
    await stopOrthanc(orthanc);
  });

  test('readyz goes 503 naming Orthanc, without hanging, then recovers by itself', async () => {
    expect((await request(app.server).get('/readyz')).status).toBe(200);
    await stopOrthanc(orthanc);

    const started = Date.now();
    const down = await request(app.server).get('/readyz');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('unavailable');
    expect(down.body.checks.orthanc.ok).toBe(false);
    expect(down.body.checks.orthanc.error).toMatch(/Orthanc unavailable/);
    expect(down.body.checks.database.ok).toBe(true);

    await startOrthanc(orthanc);
    const up = await request(app.server).get('/readyz');
    expect(up.status).toBe(200);
  });

  test('wrong Orthanc credentials make readyz 503 with the reason', async () => {
    const wrong = await testApp({ orthancUrl: `http://127.0.0.1:${orthanc.httpPort}`, orthancPassword: 'nope' });
    try {
      const res = await request(wrong.server).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body.checks.orthanc.error).toMatch(/401/);
    } finally {
      await wrong.close();
    }
  });
});

describe('configuration errors', () => {
  const node = process.execPath;
  test.each([
    [{ EHR_DATABASE_URL: '' }, /EHR_DATABASE_URL is required/],
    [{ EHR_PORT: 'eighty' }, /EHR_PORT must be integer/],
    [{ EHR_MODE: 'prod' }, /EHR_MODE must be equal to one of the allowed values/],
  ])('%o exits non-zero with one line naming the variable', (env, message) => {
    const res = spawnSync(node, ['src/main.ts'], {
      env: {
        PATH: process.env['PATH'],
        EHR_ENV_FILE: '/dev/null',
        EHR_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x',
        EHR_ORTHANC_PASSWORD: 'x',
        ...env,
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(message);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });
});

describe('PostgreSQL stopped while the facade runs', () => {
  let app: FastifyInstance;
  let cluster: PgCluster;

  beforeAll(async () => {
    const stack = inject('stack');
    cluster = { dir: join(stack.dataDir, 'pg-fault'), port: await freePort(), fsync: false };
    await initCluster(cluster);
    await startCluster(cluster);
    await ensureRoleAndDatabase(cluster, 'ehr', 'fault-db-pw');
    app = await testApp({ databaseUrl: databaseUrl(cluster, 'ehr', 'fault-db-pw'), readyTimeoutMs: 1000 });
  });
  afterAll(async () => {
    await app.close();
    await stopCluster(cluster);
  });

  test('readyz goes 503 naming the database, then recovers by itself', async () => {
    expect((await request(app.server).get('/readyz')).status).toBe(200);
    await stopCluster(cluster);
    const started = Date.now();
    const down = await request(app.server).get('/readyz');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(down.status).toBe(503);
    expect(down.body.checks.database.ok).toBe(false);
    expect(down.body.checks.orthanc.ok).toBe(true);
    await startCluster(cluster);
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await request(app.server).get('/readyz')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(200);
  });
});

describe('stack supervisor', () => {
  test('a port already taken at up gives a clear message naming the port', async () => {
    const stack = inject('stack');
    const blocker = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '0.0.0.0', () => r()));
    try {
      const dataDir = join(stack.dataDir, 'port-taken');
      mkdirSync(dataDir, { recursive: true });
      await expect(
        stackUp({
          dataDir,
          pgPort: port,
          orthancHttpPort: 1,
          orthancDicomPort: 1,
          facadePort: 1,
          fsync: false,
          facade: false,
        }),
      ).rejects.toThrow(new RegExp(`port ${port} \\(PostgreSQL\\) is already in use.*EHR_STACK_PG_PORT`));
    } finally {
      blocker.close();
    }
  });
});
