/**
 * Process faults on a supervised stack of its own (never the shared test stack): Orthanc and PostgreSQL are killed
 * (SIGKILL) or hung (SIGSTOP) during a STOW-RS upload, during a WADO-RS stream and during a FHIR write. Each request
 * must get its answer within the upstream time-out plus 5 s (circuit breakers, src/resilience/circuit-breaker.ts), and the
 * stack must recover by itself (the supervisor, src/stack/supervisor.ts): `/readyz` 200 again and the same request
 * succeeding, without any command.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { descendants, freePort } from '../src/stack/process.ts';
import type { SupervisorState } from '../src/stack/supervisor.ts';
import { makeSeries, newUid, pydicomFile, rewrite } from './helpers/dicom.ts';
import { multipartBody, STOW_TYPE, seq, val } from './helpers/stow.ts';

const execFileP = promisify(execFile);
const EHR = join(import.meta.dirname, '..', 'bin', 'ehr');
/** The facade's upstream time-out on this stack (short, so that the SIGSTOP cases stay quick). */
const UPSTREAM_MS = 10_000;
const BOUND_MS = UPSTREAM_MS + 5000;

let env: Record<string, string>;
let dataDir: string;
let base: string;
let auth: { authorization: string };

async function ehr(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(EHR, args, { env: { ...process.env, ...env }, maxBuffer: 1 << 20 });
  return stdout;
}

function services(): SupervisorState['services'] {
  return (JSON.parse(readFileSync(join(dataDir, 'supervisor.json'), 'utf8')) as SupervisorState).services;
}

function pidOf(name: 'orthanc' | 'postgres'): number {
  const pid = services().find((s) => s.name === name)?.pid;
  if (!pid) throw new Error(`${name} has no pid`);
  return pid;
}

/** Waits until the supervisor reports every service up (a restart in progress is not disturbed). */
async function allUp(): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if (services().every((s) => s.state === 'up')) return;
    await sleep(250);
  }
  throw new Error(`not all up: ${JSON.stringify(services().map((s) => [s.name, s.state]))}`);
}

function restartsOf(name: string): number {
  return services().find((s) => s.name === name)?.restarts.length ?? 0;
}

/** SIGKILL the process, or SIGSTOP it and every process under it (a hung server: PostgreSQL's backends too). */
function disrupt(name: 'orthanc' | 'postgres', how: 'SIGKILL' | 'SIGSTOP'): void {
  if (!services().every((s) => s.state === 'up')) throw new Error('disrupting a stack that is not all up');
  const pid = pidOf(name);
  for (const p of how === 'SIGSTOP' ? [pid, ...descendants(pid)] : [pid]) process.kill(p, how);
}

async function readyWithin(ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(3000) })
      .then(async (r) => {
        await r.body?.cancel();
        return r.status === 200;
      })
      .catch(() => false);
    if (ok) return true;
    await sleep(250);
  }
  return false;
}

async function fhir(method: string, path: string, body?: object): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}/fhir/${path}`, {
    method,
    headers: { ...auth, 'content-type': 'application/fhir+json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}

/** A patient and an active order; returns MRN and accession for the DICOM headers. */
async function book(): Promise<{ mrn: string; accession: string }> {
  const p = await fhir('POST', 'Patient', { resourceType: 'Patient', name: [{ family: `Fault-${randomUUID()}` }] });
  const patient = p.json as { id: string; identifier: { value: string }[] };
  const o = await fhir('POST', 'ServiceRequest', {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24627-2' }] },
    subject: { reference: `Patient/${patient.id}` },
  });
  return {
    mrn: patient.identifier[0]!.value,
    accession: (o.json as { identifier: { value: string }[] }).identifier[0]!.value,
  };
}

interface Answer {
  status: number;
  body: Buffer;
  /** The response ended early (the connection was cut mid-answer). */
  aborted: boolean;
}

/**
 * POSTs a 40-part STOW-RS body, pausing after `before` parts to run `fault`, then sends the rest. Resolves with the
 * answer and the time from the fault to the answer.
 */
async function stowAcrossFault(files: Buffer[], before: number, fault: () => void): Promise<Answer & { ms: number }> {
  const boundary = `fault-${randomUUID()}`;
  const first = multipartBody(files.slice(0, before), boundary).subarray(0, -`--${boundary}--\r\n`.length);
  const rest = multipartBody(files.slice(before), boundary);
  const url = new URL(`${base}/dicom-web/studies`);
  let faultAt = 0;
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { ...auth, 'content-type': STOW_TYPE(boundary), 'transfer-encoding': 'chunked' },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: false, ms: Date.now() - faultAt }),
      );
    });
    req.write(first);
    // Let the first parts reach Orthanc, then fault, then send the remaining parts.
    void sleep(1500).then(() => {
      fault();
      faultAt = Date.now();
      req.end(rest);
    });
  });
}

/** GETs `path`, reading slowly; runs `fault` once the answer has started. Resolves when the answer ends either way. */
function streamAcrossFault(path: string, fault: () => void): Promise<Answer & { ms: number }> {
  let faultAt = 0;
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(`${base}${path}`), {
      headers: { ...auth, accept: 'multipart/related; type="application/dicom"' },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let faulted = false;
      const done = (aborted: boolean) =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted, ms: Date.now() - faultAt });
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (!faulted) {
          faulted = true;
          res.pause();
          fault();
          faultAt = Date.now();
          setTimeout(() => res.resume(), 500);
        }
      });
      res.on('end', () => done(false));
      res.on('aborted', () => done(true));
      res.on('error', () => done(true));
    });
    req.end();
  });
}

beforeAll(async () => {
  dataDir = join(inject('stack').dataDir, `faults-${randomUUID()}`);
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  const port = await freePort();
  env = {
    EHR_STACK_DIR: dataDir,
    EHR_STACK_PG_PORT: String(await freePort()),
    EHR_STACK_ORTHANC_HTTP_PORT: String(await freePort()),
    EHR_STACK_ORTHANC_DICOM_PORT: String(await freePort()),
    EHR_PORT: String(port),
    EHR_STACK_WATCH_MS: '2000',
    EHR_UPSTREAM_TIMEOUT_MS: String(UPSTREAM_MS),
    // Heartbeats notice a hang within 5 s, well before the supervisor's watchdog kills the hung process (3 probes).
    EHR_BREAKER_HEARTBEAT_MS: '2000',
    EHR_BREAKER_PROBE_TIMEOUT_MS: '3000',
    EHR_LOG_LEVEL: 'warn',
    EHR_CHANGE_FEED_ENABLED: 'false',
  };
  base = `http://127.0.0.1:${port}`;
  await ehr('stack', 'up');
  await ehr('user', 'add', 'fault-admin', '--display-name', 'Fault admin', '--role', 'admin');
  const token = (await ehr('token', '--user', 'fault-admin', '--scope', 'user/*.cruds')).trim();
  auth = { authorization: `Bearer ${token}` };
}, 240_000);

afterAll(async () => {
  if (env) await ehr('stack', 'down');
}, 240_000);

const FAULTS = [
  ['orthanc', 'SIGKILL'],
  ['orthanc', 'SIGSTOP'],
  ['postgres', 'SIGKILL'],
  ['postgres', 'SIGSTOP'],
] as const;

describe.each(FAULTS)('%s %s', (name, how) => {
  test('during a 40-part STOW-RS: the answer comes within the upstream time-out + 5 s; the rest fail with 0x0110; the stack recovers', async () => {
    await allUp();
    const { mrn, accession } = await book();
    const s = makeSeries({ patientId: mrn, accession, count: 40, modality: 'CT' });
    const restarts = restartsOf(name);
    const answer = await stowAcrossFault(s.files, 15, () => disrupt(name, how));
    expect(answer.ms).toBeLessThan(BOUND_MS);
    // Some parts failed: 202 with the failures, 409 when none was kept, 503 when the EHR could not be asked at all.
    expect([202, 409, 503]).toContain(answer.status);
    if (answer.status !== 503) {
      const body = JSON.parse(answer.body.toString('utf8'));
      const failedParts = seq(body, '00081198');
      expect(failedParts.length).toBeGreaterThan(0);
      for (const f of failedParts) expect(val(f, '00081197')).toBe(0x0110);
    }
    expect(await readyWithin(60_000)).toBe(true);
    expect(restartsOf(name)).toBeGreaterThan(restarts);
    // The same upload succeeds once the stack is back.
    const again = await stowAcrossFault(s.files, 40, () => undefined);
    expect(again.status, again.body.toString()).toBe(200);
  }, 180_000);

  test('during a WADO-RS stream: the answer ends within the upstream time-out + 5 s; the stack recovers', async () => {
    const { mrn, accession } = await book();
    const s = makeSeries({ patientId: mrn, accession, count: 40, modality: 'CT' });
    const stored = await stowAcrossFault(s.files, 40, () => undefined);
    expect(stored.status).toBe(200);
    await allUp();
    const answer = await streamAcrossFault(`/dicom-web/studies/${s.studyUid}`, () => disrupt(name, how));
    expect(answer.ms).toBeLessThan(BOUND_MS);
    expect(answer.status).toBe(200); // the answer had started; a cut shows as an incomplete multipart body
    expect(await readyWithin(60_000)).toBe(true);
    const again = await streamAcrossFault(`/dicom-web/studies/${s.studyUid}`, () => undefined);
    expect(again).toMatchObject({ status: 200, aborted: false });
  }, 180_000);

  test('during a FHIR write: the answer comes within the upstream time-out + 5 s (201 or 503 OperationOutcome); the stack recovers', async () => {
    await allUp();
    await fhir('GET', 'Patient?_count=1'); // a pooled connection exists, as on a busy server
    const started = Date.now();
    disrupt(name, how);
    const res = await fhir('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'During-fault' }] });
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect([201, 503]).toContain(res.status);
    if (res.status === 503) expect(res.json).toMatchObject({ resourceType: 'OperationOutcome' });
    expect(await readyWithin(60_000)).toBe(true);
    const again = await fhir('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'After-fault' }] });
    expect(again.status).toBe(201);
  }, 180_000);
});

test('kill -9 Orthanc: /readyz is 200 again within 30 s without any command; status shows the restart', async () => {
  expect(await readyWithin(60_000)).toBe(true);
  await allUp();
  const before = restartsOf('orthanc');
  disrupt('orthanc', 'SIGKILL');
  const t0 = Date.now();
  await sleep(200);
  expect(await readyWithin(30_000)).toBe(true);
  expect(Date.now() - t0).toBeLessThan(30_000);
  const status = await ehr('stack', 'status');
  expect(restartsOf('orthanc')).toBe(before + 1);
  expect(status).toMatch(/orthanc\s+up .*restarts \d+.*killed by SIGKILL/);
}, 60_000);

test('while a breaker is open: DICOMweb reads answer 503 DICOM-shaped with Retry-After, FHIR 503 OperationOutcome, /readyz names the dependency', async () => {
  expect(await readyWithin(60_000)).toBe(true);
  await allUp();
  const pid = pidOf('postgres');
  const stopped = [pid, ...descendants(pid)];
  for (const p of stopped) process.kill(p, 'SIGSTOP');
  try {
    // The breaker's heartbeat notices the hang within its interval plus its probe time-out.
    type Ready = { checks: Record<string, { ok: boolean; error?: string }> };
    let ready: { status: number; json: Ready } | undefined;
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${base}/readyz`);
      const json = (await r.json()) as Ready;
      ready = { status: r.status, json };
      if (json.checks['database']?.error?.startsWith('database unavailable')) break;
      await sleep(500);
    }
    expect(ready?.status).toBe(503);
    expect(ready?.json.checks['database']).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^database unavailable/),
    });
    const t0 = Date.now();
    const qido = await fetch(`${base}/dicom-web/studies`, { headers: auth });
    expect(Date.now() - t0).toBeLessThan(2000); // fails fast
    expect(qido.status).toBe(503);
    expect(qido.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(qido.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    expect(await qido.json()).toHaveProperty('00000902');
    const read = await fetch(`${base}/fhir/Patient?_count=1`, { headers: auth });
    expect(read.status).toBe(503);
    expect(read.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await read.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'transient' }] });
  } finally {
    for (const p of stopped) {
      try {
        process.kill(p, 'SIGCONT');
      } catch {
        // killed by the watchdog meanwhile
      }
    }
  }
  // Half-open probes close the breaker once the database answers again.
  expect(await readyWithin(60_000)).toBe(true);
  expect((await fetch(`${base}/fhir/Patient?_count=1`, { headers: auth })).status).toBe(200);
}, 120_000);

/**
 * Orthanc 1.10.1's GDCM plugin crashes (SIGSEGV) when asked to convert compressed pixel data (docs/operations.md).
 * Run on this file's own stack: were the fence to fail, only this stack's Orthanc would go down (and come back).
 */
describe("requests that crash Orthanc's GDCM plugin are fenced", () => {
  const JPEG_FILES = [
    'SC_rgb_jpeg_gdcm.dcm',
    'SC_jpeg_no_color_transform.dcm',
    'JPEG-lossy.dcm',
    'MR_small_jp2klossless.dcm',
  ];
  const OCTET = 'multipart/related; type="application/octet-stream"';
  let instances: { study: string; series: string; sop: string }[] = [];

  beforeAll(async () => {
    expect(await readyWithin(60_000)).toBe(true);
    const { mrn, accession } = await book();
    const study = newUid();
    instances = JPEG_FILES.map(() => ({ study, series: newUid(), sop: newUid() }));
    const files = JPEG_FILES.map((f, i) =>
      rewrite(pydicomFile(f), {
        PatientID: mrn,
        AccessionNumber: accession,
        StudyInstanceUID: study,
        SeriesInstanceUID: instances[i]!.series,
        SOPInstanceUID: instances[i]!.sop,
      }),
    );
    const stored = await stowAcrossFault(files, files.length, () => undefined);
    // Orthanc may refuse one of pydicom's odd files (202): the checks use the instances it stored.
    expect([200, 202], stored.body.toString()).toContain(stored.status);
    const kept = new Set(seq(JSON.parse(stored.body.toString()), '00081199').map((r) => val(r, '00081155')));
    instances = instances.filter((i) => kept.has(i.sop));
    expect(instances.length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  test.each([
    ['multipart/related; type="image/jls"', 406],
    ['multipart/related; type="image/jp2"', 406],
    ['multipart/related; type="image/jpeg"', 406],
    [`${OCTET}; transfer-syntax=1.2.840.10008.1.2.4.80`, 406],
    // decompression of a compressed instance crashed about one request in four: refused too
    [OCTET, 406],
    [`${OCTET}; transfer-syntax=1.2.840.10008.1.2.1`, 406],
    [undefined, 406],
    // as stored: never converted, never crashed
    [`${OCTET}; transfer-syntax=*`, 200],
  ])('frames with Accept %s → %i, and Orthanc stays up', async (accept, status) => {
    const restarts = restartsOf('orthanc');
    for (const i of instances) {
      const res = await fetch(`${base}/dicom-web/studies/${i.study}/series/${i.series}/instances/${i.sop}/frames/1`, {
        headers: { ...auth, ...(accept ? { accept } : {}) },
      });
      const body = await res.arrayBuffer();
      expect(res.status, `${i.sop}: ${Buffer.from(body).toString('latin1').slice(0, 200)}`).toBe(status);
      if (status === 406) {
        expect(res.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
        expect(Buffer.from(body).toString()).toContain('transfer-syntax=*');
      }
    }
    expect(restartsOf('orthanc')).toBe(restarts);
  });

  test.each([
    ['multipart/related; type="application/dicom"', 200],
    [undefined, 200],
    ['multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1', 200],
    ['multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80', 406],
  ])('instances with Accept %s → %i (as stored, with a Warning), and Orthanc stays up', async (accept, status) => {
    const restarts = restartsOf('orthanc');
    for (const i of instances) {
      const res = await fetch(`${base}/dicom-web/studies/${i.study}/series/${i.series}/instances/${i.sop}`, {
        headers: { ...auth, ...(accept ? { accept } : {}) },
      });
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status).toBe(status);
      if (status === 200) {
        expect(res.headers.get('warning')).toMatch(/stored transfer syntax/);
        // The Part 10 meta header (0002,0010) names the stored, compressed transfer syntax.
        expect(body.toString('latin1')).toMatch(/1\.2\.840\.10008\.1\.2\.4\.\d+/);
      }
    }
    const study = await fetch(`${base}/dicom-web/studies/${instances[0]!.study}`, { headers: auth });
    await study.arrayBuffer();
    expect(study.status).toBe(200);
    expect(restartsOf('orthanc')).toBe(restarts);
  });
});
