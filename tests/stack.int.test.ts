/**
 * The local stack supervisor behind `make up` / `make down`: a second `up` resumes with the same data,
 * `down` waits until every part has exited, `status` reports each part, and `up` is idempotent.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, expect, inject, test } from 'vitest';
import { freePort } from '../src/stack/process.ts';
import { type StackSettings, stackDown, stackStatus, stackUp } from '../src/stack/stack.ts';

let settings: StackSettings | undefined;

afterAll(async () => {
  if (settings) await stackDown(settings);
});

async function count(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM patients');
    return rows[0].n as number;
  } finally {
    await client.end();
  }
}

test('up starts every part, down stops them all, and a second up resumes with the same data', async () => {
  const dataDir = join(inject('stack').dataDir, 'supervised');
  mkdirSync(dataDir, { recursive: true });
  settings = {
    dataDir,
    pgPort: await freePort(),
    orthancHttpPort: await freePort(),
    orthancDicomPort: await freePort(),
    facadePort: await freePort(),
    fsync: false,
    facade: true,
  };
  const info = await stackUp(settings);
  const status = await stackStatus(settings);
  expect(status.map((s) => [s.name, s.up])).toEqual([
    ['postgres', true],
    ['orthanc', true],
    ['facade', true],
  ]);
  const ready = await fetch(`http://127.0.0.1:${settings.facadePort}/readyz`);
  expect(ready.status).toBe(200);

  // Data written while up (the facade has migrated the schema on start).
  const client = new pg.Client({ connectionString: info.databaseUrl });
  await client.connect();
  await client.query(
    `INSERT INTO patients (id, version_id, last_updated, deleted, content, mrn)
     VALUES ('kept', 1, now(), false, '{"resourceType":"Patient","id":"kept"}', 'KEPT-1')`,
  );
  await client.end();

  // up again while up is a no-op (same pids).
  const again = await stackUp(settings);
  expect(again.databaseUrl).toBe(info.databaseUrl);
  expect((await stackStatus(settings)).map((s) => s.pid)).toEqual(status.map((s) => s.pid));

  await stackDown(settings);
  const down = await stackStatus(settings);
  expect(down.every((s) => !s.up)).toBe(true);
  await expect(fetch(`http://127.0.0.1:${settings.facadePort}/healthz`)).rejects.toThrow();

  const resumed = await stackUp(settings);
  expect(resumed.databaseUrl).toBe(info.databaseUrl); // the same generated secrets
  expect(await count(resumed.databaseUrl)).toBe(1);
  expect((await fetch(`http://127.0.0.1:${settings.facadePort}/readyz`)).status).toBe(200);
});
