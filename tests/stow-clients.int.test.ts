import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import type { Config } from '../src/config/spec.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { readFileSync } from 'node:fs';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, orthancIdOf, STOW_TYPE, seq, val } from './helpers/stow.ts';

/** Real clients over real HTTP: Expect handling, dicomweb-client, curl-like raw requests, the CLI and a browser form. */

const B = 'clients-boundary';
let app: FastifyInstance;
let base: string;
let token: string;
let auth: { authorization: string };

async function listen(overrides: Partial<Config> = {}): Promise<{ app: FastifyInstance; base: string }> {
  const port = await freePort();
  const a = await buildApp(testConfig({ publicBaseUrl: `http://127.0.0.1:${port}`, ...overrides }));
  await a.listen({ host: '127.0.0.1', port });
  return { app: a, base: `http://127.0.0.1:${port}` };
}

beforeAll(async () => {
  ({ app, base } = await listen());
  token = await adminToken(app);
  auth = bearer(token);
});
afterAll(async () => {
  await app.close();
});

/** A raw HTTP/1.1 POST that can carry an `Expect` header and waits for `100 Continue` when asked to. */
function rawPost(
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  waitForContinue: boolean,
): Promise<{ status: number; body: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = http.request(`${base}${path}`, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), continued }));
    });
    req.on('error', reject);
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    if (!waitForContinue) req.end(body);
    else req.flushHeaders();
  });
}

describe('Expect and request-level errors over real HTTP', () => {
  test('Expect: 100-continue gets 100 Continue, then the upload is stored', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 2 });
    const body = multipartBody(s.files, B);
    const res = await rawPost(
      '/dicom-web/studies',
      { ...auth, 'content-type': STOW_TYPE(B), 'content-length': String(body.length), expect: '100-continue' },
      body,
      true,
    );
    expect([res.status, res.continued]).toEqual([200, true]);
    expect(await orthancIdOf(s.studyUid, 'Study')).toBeDefined();
  });

  test('Expect: 100-continue with a wrong type or no token is refused before the body is sent', async () => {
    const body = Buffer.from('{}');
    const wrongType = await rawPost(
      '/dicom-web/studies',
      { ...auth, 'content-type': 'application/json', 'content-length': '2', expect: '100-continue' },
      body,
      true,
    );
    expect([wrongType.status, wrongType.continued]).toEqual([415, false]);
    const noToken = await rawPost(
      '/dicom-web/studies',
      { 'content-type': STOW_TYPE(B), 'content-length': '2', expect: '100-continue' },
      body,
      true,
    );
    expect([noToken.status, noToken.continued]).toEqual([401, false]);
  });

  test('a route that does not defer 100 Continue (FHIR create) gets it at once, and a token-less one too', async () => {
    const body = Buffer.from(JSON.stringify({ resourceType: 'Organization', name: 'Expect Clinic' }));
    const headers = { 'content-type': 'application/fhir+json', 'content-length': String(body.length) };
    const created = await rawPost('/fhir/Organization', { ...auth, ...headers, expect: '100-continue' }, body, true);
    expect([created.status, created.continued]).toEqual([201, true]);
    const refused = await rawPost('/fhir/Organization', { ...headers, expect: '100-continue' }, body, true);
    expect([refused.status, refused.continued]).toEqual([401, true]);
  });

  test('an empty Expect: header is served (Node alone would answer 417); other expectations get 417', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
    const body = multipartBody(s.files, B);
    const h = { ...auth, 'content-type': STOW_TYPE(B), 'content-length': String(body.length) };
    expect((await rawPost('/dicom-web/studies', { ...h, expect: '' }, body, false)).status).toBe(200);
    expect((await rawPost('/dicom-web/studies', { ...h, expect: 'something-else' }, body, false)).status).toBe(417);
  });

  test.each([
    [
      'not multipart: a body without the boundary',
      STOW_TYPE(B),
      'hello, no multipart here',
      400,
      /not a readable multipart/,
    ],
    ['multipart/related without boundary', 'multipart/related; type="application/dicom"', 'x', 400, /boundary/],
    ['application/dicom alone', 'application/dicom', 'x', 415, /supported: multipart\/related/],
    [
      'JSON metadata + bulk data form',
      'multipart/related; type="application/dicom+json"; boundary=x',
      'x',
      415,
      /metadata and bulk data/,
    ],
    ['no content type', '', 'x', 415, /Content-Type is missing/],
  ])('%s', async (_name, type, body, status, message) => {
    const headers: Record<string, string> = { ...auth, 'content-length': String(body.length) };
    if (type) headers['content-type'] = type;
    const res = await rawPost('/dicom-web/studies', headers, Buffer.from(body), false);
    expect(res.status).toBe(status);
    expect(res.body).toMatch(message);
  });

  test('unauthenticated gets 401 and stores nothing', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
    const body = multipartBody(s.files, B);
    const res = await rawPost('/dicom-web/studies', { 'content-type': STOW_TYPE(B) }, body, false);
    expect(res.status).toBe(401);
    expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
  });

  test('unquoted type and parts typed application/octet-stream are accepted', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 2 });
    const body = multipartBody(
      s.files.map((f) => ({ body: f, type: 'application/octet-stream' })),
      B,
    );
    const res = await rawPost(
      '/dicom-web/studies',
      { ...auth, 'content-type': `multipart/related; type=application/dicom; boundary=${B}` },
      body,
      false,
    );
    expect(res.status).toBe(200);
  });
});

describe('access policy', () => {
  test('a caller without write access to the patient: 0x0124 and nothing stored', async () => {
    const a = await bookPatientAndOrder(app, auth);
    const other = await bookPatientAndOrder(app, auth);
    await tokenFor(app, { user: { username: 'stow-doctor', roles: ['doctor'] }, scope: 'user/*.cruds' });
    await grantPatient(app, 'stow-doctor', a.patientId);
    const doctor = await tokenFor(app, { user: { username: 'stow-doctor', roles: ['doctor'] }, scope: 'user/*.cruds' });
    const mine = makeSeries({ patientId: a.mrn, accession: a.accession, count: 1 });
    const theirs = makeSeries({ patientId: other.mrn, accession: other.accession, count: 1 });
    const res = await fetch(`${base}/dicom-web/studies`, {
      method: 'POST',
      headers: { authorization: `Bearer ${doctor}`, 'content-type': STOW_TYPE(B) },
      body: multipartBody([...theirs.files, ...mine.files], B),
    });
    expect(res.status).toBe(202);
    const json = (await res.json()) as Parameters<typeof seq>[0];
    expect(seq(json, '00081198').map((f) => [val(f, '00081155'), val(f, '00081197')])).toEqual([
      [theirs.sopUids[0], 0x0124],
    ]);
    expect(await orthancIdOf(theirs.studyUid, 'Study')).toBeUndefined();
    expect(await orthancIdOf(mine.studyUid, 'Study')).toBeDefined();
    const order = await app.db.one(sql.unsafe`SELECT study_instance_uid FROM orders WHERE id = ${other.orderId}`);
    expect(order).toEqual({ study_instance_uid: null });
  });
});

interface StowClient {
  storeInstances(o: { datasets: ArrayBuffer[]; studyInstanceUID?: string }): Promise<unknown>;
}

/** The npm dicomweb-client (what OHIF uses) against `base`, over real HTTP (xhr2). */
async function dicomwebClient(url: string, headers: Record<string, string>): Promise<StowClient> {
  const xhr2 = 'xhr2'; // untyped CommonJS module
  const { default: XHR } = (await import(xhr2)) as { default: unknown };
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
  const { api } = (await import('dicomweb-client')) as unknown as {
    api: { DICOMwebClient: new (o: object) => StowClient };
  };
  return new api.DICOMwebClient({ url: `${url}/dicom-web`, headers });
}

const arrayBuffers = (files: Buffer[]) =>
  files.map((f) => f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength) as ArrayBuffer);

/** What dicomweb-client rejects with on a non-2xx answer. */
type ClientError = { status: number; response: string };

describe('dicomweb-client: STOW to a mismatched or invalid study URL (PS3.18 §10.5.3)', () => {
  test.each([
    ['another valid study', () => newUid()],
    ['not a UID', () => 'nope'],
  ])('%s: 409, every instance in FailedSOPSequence with its UIDs and a reason', async (_name, target) => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 2 });
    const client = await dicomwebClient(base, auth);
    const err = (await client.storeInstances({ datasets: arrayBuffers(s.files), studyInstanceUID: target() }).then(
      () => undefined,
      (e: ClientError) => e,
    )) as ClientError | undefined;
    expect(err?.status).toBe(409);
    const body = JSON.parse(String(err?.response)) as Parameters<typeof seq>[0];
    const failed = seq(body, '00081198');
    expect(failed.map((f) => val(f, '00081155'))).toEqual(s.sopUids);
    for (const f of failed) {
      expect(val(f, '00081150')).toBe('1.2.840.10008.5.1.4.1.1.2'); // CT Image Storage, from the file
      expect(val(f, '00081197')).toBe(0xa900);
      expect(String(val(f, '00000902'))).toMatch(/not the study of the request URL/);
    }
    expect(body['00081199']).toBeUndefined();
    expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
  });
});

describe('hold mode: an instance without PatientID is stored and queued', () => {
  test("dcmjs's US-PAL-8-10x-echo.dcm (no PatientID, no AccessionNumber): 202, 0xB100, queued", async () => {
    const held = await listen({ stowUnmatched: 'hold' });
    try {
      const file = readFileSync('node_modules/dicomweb-client/testData/US-PAL-8-10x-echo.dcm');
      const client = await dicomwebClient(held.base, bearer(await adminToken(held.app)));
      const text = String(await client.storeInstances({ datasets: arrayBuffers([file]) }));
      const body = JSON.parse(text) as Parameters<typeof seq>[0];
      const stored = seq(body, '00081199');
      expect(stored.map((x) => val(x, '00081155'))).toEqual(['999.999.133.1996.1.1800.1.6.25']);
      expect(val(stored[0], '00081196')).toBe(0xb100);
      expect(await orthancIdOf('999.999.133.1996.1.1800.1.6.25', 'Instance')).toBeDefined();
      const item = await held.app.db.one(sql.unsafe`
        SELECT reason, detail FROM dicom_unmatched WHERE study_instance_uid = '999.999.3859744'`);
      expect(item).toMatchObject({ reason: 'missing-identifiers' });
      expect(String((item as { detail: string }).detail)).toMatch(/no PatientID/);
    } finally {
      await held.app.close();
    }
  });

  test('in reject mode the same file is refused (0xA900, missing PatientID) and named by its UIDs', async () => {
    const file = readFileSync('node_modules/dicomweb-client/testData/US-PAL-8-10x-echo.dcm');
    const res = await request(app.server)
      .post('/dicom-web/studies')
      .set(auth)
      .set('content-type', STOW_TYPE(B))
      .send(multipartBody([file], B));
    expect(res.status).toBe(409);
    const f = seq(res.body, '00081198')[0];
    expect(val(f, '00081197')).toBe(0xa900);
    expect(val(f, '00081155')).toBe('999.999.133.1996.1.1800.1.6.25');
    expect(val(f, '00081150')).toBe('1.2.840.10008.5.1.4.1.1.3.1');
    expect(String(res.headers['warning'])).toMatch(/PatientID/);
  });
});

describe('real clients', () => {
  test('dicomweb-client storeInstances', async () => {
    const xhr2 = 'xhr2'; // untyped CommonJS module
    const { default: XHR } = (await import(xhr2)) as { default: unknown };
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
    const { api } = (await import('dicomweb-client')) as unknown as {
      api: { DICOMwebClient: new (o: object) => { storeInstances(o: object): Promise<unknown> } };
    };
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 3 });
    const client = new api.DICOMwebClient({ url: `${base}/dicom-web`, headers: auth });
    const datasets = s.files.map((f) => f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength));
    await client.storeInstances({ datasets });
    const studyId = await orthancIdOf(s.studyUid, 'Study');
    expect(studyId).toBeDefined();
    const order = await app.db.one(sql.unsafe`SELECT number_of_images FROM orders WHERE id = ${b.orderId}`);
    expect(order).toEqual({ number_of_images: 3 });
  });

  test('the CLI uploads a folder, skips non-DICOM files and reports a rejected file', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 3 });
    const wrong = makeSeries({ patientId: 'NOBODY-KNOWN', accession: b.accession, count: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'ehr-upload-'));
    try {
      for (const [i, f] of s.files.entries()) writeFileSync(join(dir, `img${i}.dcm`), f);
      writeFileSync(join(dir, 'wrong.dcm'), wrong.files[0]!);
      writeFileSync(join(dir, 'README.txt'), 'not an image');
      const run = await promisify(execFile)(
        'bin/ehr',
        ['upload', dir, '--url', base, '--token', token, '--batch', '2'],
        { env: { ...process.env, EHR_TOKEN: '' } },
      ).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`skipping ${join(dir, 'README.txt')}: not a DICOM Part 10 file`);
      expect(run.stdout).toContain(`${s.studyUid}: 3 stored, 0 rejected`);
      expect(run.stdout).toContain(`${wrong.studyUid}: 0 stored, 1 rejected`);
      expect(run.stdout).toMatch(/wrong\.dcm: failed \(0xA900\): no patient has MRN/);
      const order = await app.db.one(sql.unsafe`SELECT number_of_images FROM orders WHERE id = ${b.orderId}`);
      expect(order).toEqual({ number_of_images: 3 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('/api/v1/dicom/upload with a browser-style multipart/form-data', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 2 });
    const form = new FormData();
    for (const [i, f] of s.files.entries()) form.append('files', new Blob([f]), `slice${i}.dcm`);
    form.append('files', new Blob([Buffer.from('garbage')], { type: 'application/octet-stream' }), 'notes.dcm');
    form.append('comment', 'a plain field is ignored');
    const res = await fetch(`${base}/api/v1/dicom/upload`, { method: 'POST', headers: auth, body: form });
    expect(res.status).toBe(202);
    const json = (await res.json()) as Record<string, unknown>;
    expect(json).toMatchObject({
      success: false,
      study_instance_uid: s.studyUid,
      order_id: b.orderId,
      accepted: 2,
      rejected: [{ file: 'notes.dcm', reason: expect.stringContaining('0xC000') }],
    });
    const ok = new FormData();
    ok.append('file', new Blob([s.files[0]!]), 'again.dcm');
    const again = await fetch(`${base}/api/v1/dicom/upload`, { method: 'POST', headers: auth, body: ok });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ success: true, accepted: 1, rejected: [] });
    const wrongType = await fetch(`${base}/api/v1/dicom/upload`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(wrongType.status).toBe(415);
    const logs = await app.db.any(sql.unsafe`
      SELECT source FROM dicom_upload_logs WHERE study_instance_uid = ${s.studyUid}`);
    expect(logs).toEqual([{ source: 'upload' }, { source: 'upload' }]);
  });
});

describe('hold mode', () => {
  test('unmatched instances are stored, reported as warnings (202) naming the queue, and queued', async () => {
    const held = await listen({ stowUnmatched: 'hold' });
    try {
      const t = await adminToken(held.app);
      const s = makeSeries({ patientId: 'UNKNOWN-MRN-HOLD', accession: 'UNKNOWN-ACC', count: 2 });
      const res = await fetch(`${held.base}/dicom-web/studies`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t}`, 'content-type': STOW_TYPE(B) },
        body: multipartBody(s.files, B),
      });
      expect(res.status).toBe(202);
      const json = (await res.json()) as Parameters<typeof seq>[0];
      const refs = seq(json, '00081199');
      expect(refs.map((r) => val(r, '00081196'))).toEqual([0xb100, 0xb100]);
      expect(res.headers.get('warning')).toContain('dicom_unmatched (reconciliation queue)');
      expect(await orthancIdOf(s.studyUid, 'Study')).toBeDefined();
      const q = await held.app.db.one(sql.unsafe`
        SELECT reason, source, status, number_of_instances FROM dicom_unmatched WHERE study_instance_uid = ${s.studyUid}`);
      expect(q).toEqual({ reason: 'unknown-mrn', source: 'stow', status: 'pending', number_of_instances: 2 });
    } finally {
      await held.app.close();
    }
  });
});
