import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, bearer, ensureClient } from './helpers/auth.ts';
import { makeSeries } from './helpers/dicom.ts';
import { type Booked, bookPatientAndOrder, orthancIdOf } from './helpers/stow.ts';

/**
 * `bin/ehr upload --client`: the CLI authenticates as a SMART Backend Services client (registered JWKS, signed client
 * assertion, client_credentials) and stores only for the client's allowed patients.
 */

let app: FastifyInstance;
let base: string;
let dir: string;
let mine: Booked;
let other: Booked;
const kid = 'uploader-key-1';

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await buildApp(testConfig({ publicBaseUrl: base }));
  await app.listen({ host: '127.0.0.1', port });
  const admin = bearer(await adminToken(app));
  mine = await bookPatientAndOrder(app, admin);
  other = await bookPatientAndOrder(app, admin);
  const pair = await generateKeyPair('ES384', { extractable: true });
  await ensureClient(app, {
    clientId: 'cli-uploader',
    scope: 'system/*.cruds',
    patients: [mine.patientId],
    jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid, alg: 'ES384' }] },
  });
  dir = mkdtempSync(join(tmpdir(), 'ehr-upload-client-'));
  const priv = { ...(await exportJWK(pair.privateKey)), kid, alg: 'ES384' };
  writeFileSync(join(dir, 'client.jwks.json'), JSON.stringify({ keys: [priv] }));
  writeFileSync(join(dir, 'client.pem'), await exportPKCS8(pair.privateKey));
  const stranger = await generateKeyPair('ES384', { extractable: true });
  writeFileSync(join(dir, 'stranger.jwk.json'), JSON.stringify({ ...(await exportJWK(stranger.privateKey)), kid }));
});
afterAll(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

function folderFor(b: Booked, name: string, count: number) {
  const s = makeSeries({ patientId: b.mrn, accession: b.accession, count });
  const folder = join(dir, name);
  mkdirSync(folder);
  for (const [i, f] of s.files.entries()) writeFileSync(join(folder, `img${i}.dcm`), f);
  return { folder, studyUid: s.studyUid };
}

async function cli(args: string[]) {
  return promisify(execFile)('bin/ehr', ['upload', ...args, '--url', base, '--no-progress'], {
    env: { ...process.env, EHR_TOKEN: '' },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

const orderImages = async (orderId: string) =>
  app.db.one(sql.unsafe`SELECT number_of_images, study_instance_uid FROM orders WHERE id = ${orderId}`);

test('--client with a JWKS file: the token comes from discovery and the client stores for its patient', async () => {
  const s = folderFor(mine, 'mine', 3);
  const run = await cli([s.folder, '--client', 'cli-uploader', '--key', join(dir, 'client.jwks.json')]);
  expect(run.stderr).toContain(
    `authenticated as backend client cli-uploader at ${base}/auth/token (scope: system/ImagingStudy.cs system/Patient.s system/ServiceRequest.rs)`,
  );
  expect(run.stdout).toContain(`${s.studyUid}: 3 stored, 0 rejected`);
  expect(run.code).toBe(0);
  expect(await orderImages(mine.orderId)).toEqual({ number_of_images: 3, study_instance_uid: s.studyUid });
  expect(await orthancIdOf(s.studyUid, 'Study')).toBeDefined();
});

test('--client for another patient: every file is rejected with 0x0124 and the exit status is 1', async () => {
  const s = folderFor(other, 'other', 2);
  const run = await cli([
    s.folder,
    '--client',
    'cli-uploader',
    '--key',
    join(dir, 'client.pem'),
    '--alg',
    'ES384',
    '--kid',
    kid,
    '--token-url',
    `${base}/auth/token`,
  ]);
  expect(run.code).toBe(1);
  expect(run.stdout).toContain(`${s.studyUid}: 0 stored, 2 rejected`);
  expect(run.stdout.match(/img\d\.dcm: .*0x0124/g)).toHaveLength(2);
  expect(await orderImages(other.orderId)).toEqual({ number_of_images: null, study_instance_uid: null });
  expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
});

test('a key the server does not know: a clear error, exit 1, nothing sent', async () => {
  const s = folderFor(mine, 'stranger', 1);
  const run = await cli([s.folder, '--client', 'cli-uploader', '--key', join(dir, 'stranger.jwk.json')]);
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(/ehr upload: the token endpoint refused client cli-uploader: invalid_client: /);
  expect(run.stdout).not.toContain('uploading');
  expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
});
