import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImagingStudy } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { verifyChain } from '../src/audit/store.ts';
import { loadConfig } from '../src/config/load-config.ts';
import type { Config } from '../src/config/spec.ts';
import { migrate } from '../src/db/migrate.ts';
import { orthancPid } from '../src/stack/orthanc.ts';
import { clusterPid } from '../src/stack/postgres.ts';
import { freePort, pidAlive } from '../src/stack/process.ts';
import { type StackInfo, type StackSettings, stackDown, stackUp } from '../src/stack/stack.ts';
import { adminToken, bearer } from './helpers/auth.ts';
import { eventually, FaultStack, signalAll, within } from './helpers/fault-stack.ts';
import { makeSeries } from './helpers/dicom.ts';
import { type Booked, bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';

/**
 * Faults on the real stack: PostgreSQL (which also holds Orthanc's index and storage) and Orthanc are killed with
 * SIGKILL, or frozen with SIGSTOP, in the middle of a STOW-RS upload and of a FHIR write. These tests run their own
 * throwaway stack (never the shared one of tests/global-setup.ts) and restart the killed process themselves. After
 * recovery each asserts consistency: every instance Orthanc holds is linked (these studies match their order) or
 * queued with a true reason; a retry is idempotent and links the order; no queue item stays pending for a linked
 * study; the upload log exists; every attempt has its AuditEvent and the hash chain verifies.
 */

let settings: StackSettings;
let info: StackInfo;
let stack: FaultStack;
let app: FastifyInstance;
let auth: { authorization: string };

function stowRequest(files: Buffer[]) {
  const boundary = `stow-${randomUUID()}`;
  return request(app.server)
    .post('/dicom-web/studies')
    .set(auth)
    .set('content-type', STOW_TYPE(boundary))
    .send(multipartBody(files, boundary));
}

/**
 * Starts a STOW of `files` and calls `fault` once Orthanc holds `after` of them; returns the response. The rest of
 * the body is held back until the fault has happened, so the fault always lands mid-upload however fast the machine.
 */
async function stowWithFault(files: Buffer[], studyUid: string, after: number, fault: () => void) {
  const boundary = `stow-${randomUUID()}`;
  const body = multipartBody(files, boundary);
  // Up to and including the delimiter line that opens part `after`: the parser then knows parts 0..after-1 ended.
  const delimiter = Buffer.from(`--${boundary}\r\n`);
  let at = -1;
  for (let i = 0; i <= after; i++) at = body.indexOf(delimiter, at + 1);
  const head = body.subarray(0, at + delimiter.length);
  const tail = body.subarray(at + delimiter.length);
  let release = () => {};
  const released = new Promise<void>((r) => {
    release = r;
  });
  let step = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (step === 0) c.enqueue(head);
      else if (step === 1) {
        await released;
        c.enqueue(tail);
      } else c.close();
      step += 1;
    },
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const pending = fetch(`http://127.0.0.1:${port}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...auth, 'content-type': STOW_TYPE(boundary) },
    body: stream,
    duplex: 'half',
  } as RequestInit).then(
    async (r) => ({
      status: r.status,
      text: await r.text(),
      headers: { 'x-request-id': r.headers.get('x-request-id') ?? '' },
    }),
    (err: unknown) => ({ status: 0, text: String(err), headers: {} as Record<string, string> }),
  );
  let faulted = false;
  try {
    await eventually(
      `${after} instances in Orthanc`,
      async () => {
        if ((await stack.orthancSops(studyUid).catch(() => [])).length >= after) {
          fault();
          faulted = true;
        }
        return faulted;
      },
      60_000,
    );
  } finally {
    release();
  }
  return pending;
}

/**
 * The facade sees its dependencies again: its circuit breakers close on their next probe, and /readyz asks each
 * dependency directly (closing a breaker that answers).
 */
async function facadeReady(): Promise<void> {
  await eventually('the facade to be ready', async () => (await app.inject({ url: '/readyz' })).statusCode === 200);
}

interface EhrStudy {
  imagingStudy: ImagingStudy | undefined;
  orderLinkedTo: string | null;
  orderStatus: string | undefined;
  uploadLogs: number;
  pendingItems: { id: string; reason: string; detail: string | null }[];
}

async function ehr(studyUid: string, booked: Booked): Promise<EhrStudy> {
  const study = (await app.db.maybeOne(sql.unsafe`
    SELECT content FROM imaging_studies WHERE study_instance_uid = ${studyUid} AND NOT deleted`)) as {
    content: ImagingStudy;
  } | null;
  const order = (await app.db.one(sql.unsafe`
    SELECT study_instance_uid, content->>'status' AS status FROM orders WHERE id = ${booked.orderId}`)) as {
    study_instance_uid: string | null;
    status: string;
  };
  const logs = Number(
    await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM dicom_upload_logs WHERE study_instance_uid = ${studyUid}`),
  );
  const items = (await app.db.any(sql.unsafe`
    SELECT id::text AS id, reason, detail FROM dicom_unmatched
    WHERE study_instance_uid = ${studyUid} AND status IN ('pending', 'relinking')`)) as readonly {
    id: string;
    reason: string;
    detail: string | null;
  }[];
  return {
    imagingStudy: study?.content,
    orderLinkedTo: order.study_instance_uid,
    orderStatus: order.status,
    uploadLogs: logs,
    pendingItems: [...items],
  };
}

const sopsOf = (s: ImagingStudy | undefined) =>
  (s?.series ?? []).flatMap((x) => (x.instance ?? []).map((i) => i.uid)).sort();

/**
 * After recovery: every instance in Orthanc is linked (the study matches its order) and nothing is queued; the order
 * points at the study and the upload log has rows. Waits for the change feed (StableStudy or the orphan sweep).
 */
async function expectAccountedFor(studyUid: string, booked: Booked): Promise<void> {
  const inOrthanc = await eventually('Orthanc to answer', () => stack.orthancSops(studyUid));
  if (inOrthanc.length === 0) return;
  const state = await eventually(`the ${inOrthanc.length} orphaned instance(s) to be linked`, async () => {
    const s = await ehr(studyUid, booked);
    return sopsOf(s.imagingStudy).length >= inOrthanc.length ? s : undefined;
  });
  expect(sopsOf(state.imagingStudy)).toEqual(expect.arrayContaining(inOrthanc));
  expect(state.orderLinkedTo).toBe(studyUid);
  expect(state.uploadLogs).toBeGreaterThan(0);
  expect(state.pendingItems).toEqual([]);
}

/** A retry of the whole upload is accepted, links all instances, and a second retry changes nothing. */
async function expectIdempotentRetry(files: Buffer[], studyUid: string, sops: string[], booked: Booked) {
  const retry = await within('the retry', stowRequest(files));
  expect(retry.status, retry.text).toBe(200);
  const after = await ehr(studyUid, booked);
  expect(sopsOf(after.imagingStudy)).toEqual([...sops].sort());
  expect(after.imagingStudy?.numberOfInstances).toBe(sops.length);
  expect(after.orderLinkedTo).toBe(studyUid);
  expect(after.orderStatus).toBe('completed');
  expect(after.uploadLogs).toBeGreaterThan(0);
  expect(after.pendingItems).toEqual([]);
  expect(await stack.orthancSops(studyUid)).toEqual([...sops].sort());
  const again = await within('the second retry', stowRequest(files));
  expect(again.status, again.text).toBe(200);
  const twice = await ehr(studyUid, booked);
  expect(twice.imagingStudy?.numberOfInstances).toBe(sops.length);
  expect(twice.pendingItems).toEqual([]);
}

/** The request's AuditEvent reached the chain (through the spill if need be), and the chain verifies. */
async function expectAudited(requestId: string | undefined): Promise<void> {
  if (requestId) {
    await eventually(`the AuditEvent of request ${requestId}`, async () => {
      await app.auditSpill?.drain();
      const n = Number(
        await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event WHERE request_id = ${requestId}`),
      );
      return n >= 1;
    });
  }
  const verified = await verifyChain(app.db);
  expect(verified.ok, JSON.stringify(verified)).toBe(true);
}

beforeAll(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ehr-faults-'));
  chmodSync(dataDir, 0o755);
  settings = {
    dataDir,
    pgPort: await freePort(),
    orthancHttpPort: await freePort(),
    orthancDicomPort: await freePort(),
    facadePort: await freePort(),
    fsync: false,
    facade: false,
  };
  info = await stackUp(settings);
  stack = new FaultStack(info);
  await migrate(info.databaseUrl);
  const config: Config = {
    ...loadConfig({
      EHR_DATABASE_URL: info.databaseUrl,
      EHR_ORTHANC_URL: info.orthancUrl,
      EHR_ORTHANC_USERNAME: info.orthanc.username,
      EHR_ORTHANC_PASSWORD: info.orthanc.password,
      EHR_LOG_LEVEL: process.env['EHR_TEST_LOG_LEVEL'] ?? 'silent',
      EHR_AUDIT_SPILL_DIR: join(dataDir, 'audit-spill'),
    }),
    // A stalled Orthanc fails the request within a bound instead of holding it.
    upstreamTimeoutMs: 2000,
    changeFeedEnabled: true,
    changeFeedStartAt: 'beginning',
    changeFeedPollMs: 200,
    changeFeedLeaderRetryMs: 300,
    changeFeedDeletionSweepS: 1,
  };
  app = await buildApp(config);
  // Listening: the faulted uploads stream their body over a real socket (stowWithFault).
  await app.listen({ host: '127.0.0.1', port: 0 });
  auth = bearer(await adminToken(app));
}, 180_000);

beforeEach(async () => {
  // A test that failed half-way must not take the next one down with it.
  signalAll(stack.clusterPids(), 'SIGCONT');
  const o = orthancPid(info.orthanc);
  if (o) signalAll([o], 'SIGCONT');
  await stack.recover();
  await facadeReady();
}, 120_000);

afterAll(async () => {
  // Whatever a failed test left frozen is thawed first, so that the stack can stop.
  if (info) signalAll(stack.clusterPids(), 'SIGCONT');
  const orthancNow = info ? orthancPid(info.orthanc) : undefined;
  if (orthancNow) signalAll([orthancNow], 'SIGCONT');
  await app?.close().catch(() => undefined);
  if (settings) {
    await stackDown(settings).catch(() => undefined);
    rmSync(settings.dataDir, { recursive: true, force: true });
  }
}, 180_000);

describe('PostgreSQL killed (SIGKILL) during a STOW-RS upload of 40 instances', () => {
  test('afterwards every instance is accounted for, a retry links the order, the attempt is audited', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 40 });
    // PostgreSQL stays down until the upload has answered: Orthanc (whose index is in the same cluster) stalls, the
    // EHR transaction fails and so does the undo in Orthanc, as in production.
    const res = await within(
      'the interrupted upload',
      stowWithFault(s.files, s.studyUid, 5, () => {
        const pid = clusterPid(info.pg);
        if (pid && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      }),
      240_000,
    );
    // Whatever the answer, it is not a success for instances the EHR never recorded.
    expect(res.status).not.toBe(200);
    await stack.recover();
    await facadeReady();
    const left = await eventually('Orthanc to answer', () => stack.orthancSops(s.studyUid));
    const recorded = sopsOf((await ehr(s.studyUid, booked)).imagingStudy);
    console.info(`after the kill: Orthanc holds ${left.length} instance(s), the EHR recorded ${recorded.length}`);
    await expectAccountedFor(s.studyUid, booked);
    await expectIdempotentRetry(s.files, s.studyUid, s.sopUids, booked);
    await expectAudited(res.headers['x-request-id']);
  }, 300_000);
});

describe('Orthanc killed (SIGKILL) during a STOW-RS upload', () => {
  test('afterwards every instance is accounted for and a retry links the order', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 40 });
    const res = await within(
      'the interrupted upload',
      stowWithFault(s.files, s.studyUid, 5, () => {
        const pid = orthancPid(info.orthanc);
        if (pid) process.kill(pid, 'SIGKILL');
      }),
    );
    expect(res.status).not.toBe(200);
    await stack.restartOrthancIfStuck();
    await facadeReady();
    await expectAccountedFor(s.studyUid, booked);
    await expectIdempotentRetry(s.files, s.studyUid, s.sopUids, booked);
    await expectAudited(res.headers['x-request-id']);
  }, 300_000);
});

describe('Orthanc frozen (SIGSTOP) during a STOW-RS upload', () => {
  test('stores that timed out but landed are accounted for, and a retry links the order', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 40 });
    let frozen: number | undefined;
    const upload = stowWithFault(s.files, s.studyUid, 5, () => {
      frozen = orthancPid(info.orthanc);
      if (frozen) process.kill(frozen, 'SIGSTOP');
    });
    // Longer than the facade's Orthanc time-out: the stores in flight fail on the facade's side.
    await new Promise((r) => setTimeout(r, 4000));
    if (frozen) process.kill(frozen, 'SIGCONT');
    const res = await within('the upload after the thaw', upload, 240_000);
    expect(res.status).not.toBe(0);
    await expectAccountedFor(s.studyUid, booked);
    await expectIdempotentRetry(s.files, s.studyUid, s.sopUids, booked);
    await expectAudited(res.headers['x-request-id']);
  }, 300_000);
});

describe('PostgreSQL frozen (SIGSTOP) during a STOW-RS upload and a FHIR write', () => {
  test('the upload completes or fails cleanly once it thaws; a retry links the order', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 40 });
    let frozen: number[] = [];
    const upload = stowWithFault(s.files, s.studyUid, 5, () => {
      frozen = stack.clusterPids();
      signalAll(frozen, 'SIGSTOP');
    });
    await new Promise((r) => setTimeout(r, 3000));
    signalAll(frozen, 'SIGCONT');
    const res = await within('the thawed upload', upload);
    await stack.restartOrthancIfStuck();
    await facadeReady();
    await expectAccountedFor(s.studyUid, booked);
    await expectIdempotentRetry(s.files, s.studyUid, s.sopUids, booked);
    await expectAudited(res.headers['x-request-id']);
  }, 300_000);

  test('a FHIR update started while frozen completes once it thaws, is audited, and repeats idempotently', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const body = {
      resourceType: 'Patient',
      id: booked.patientId,
      identifier: [],
      name: [{ family: 'Thawed', given: ['After', 'Sigstop'] }],
    };
    const current = await app.inject({ method: 'GET', url: `/fhir/Patient/${booked.patientId}`, headers: auth });
    body.identifier = current.json().identifier;
    const put = () =>
      app.inject({
        method: 'PUT',
        url: `/fhir/Patient/${booked.patientId}`,
        headers: { ...auth, 'content-type': 'application/fhir+json' },
        payload: JSON.stringify(body),
      });
    const frozen = stack.clusterPids();
    signalAll(frozen, 'SIGSTOP');
    const pending = put();
    await new Promise((r) => setTimeout(r, 2000));
    signalAll(frozen, 'SIGCONT');
    const res = await within('the thawed FHIR write', pending);
    expect([200, 503]).toContain(res.statusCode);
    const again = await within('the repeated FHIR write', put());
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().name[0].family).toBe('Thawed');
    await expectAudited(String(res.headers['x-request-id']));
    await expectAudited(String(again.headers['x-request-id']));
  }, 300_000);
});

describe('PostgreSQL killed (SIGKILL) during a FHIR write', () => {
  test('the write fails cleanly or completes, is audited after recovery, and can be repeated', async () => {
    const booked = await bookPatientAndOrder(app, auth);
    const current = await app.inject({ method: 'GET', url: `/fhir/Patient/${booked.patientId}`, headers: auth });
    const body = { ...current.json(), name: [{ family: 'AfterKill' }] };
    const put = () =>
      app.inject({
        method: 'PUT',
        url: `/fhir/Patient/${booked.patientId}`,
        headers: { ...auth, 'content-type': 'application/fhir+json' },
        payload: JSON.stringify(body),
      });
    const pid = clusterPid(info.pg);
    if (pid) process.kill(pid, 'SIGKILL');
    const pending = put();
    await new Promise((r) => setTimeout(r, 2000));
    await stack.recover();
    await facadeReady();
    const res = await within('the FHIR write during the outage', pending);
    // Either it failed cleanly (an error with a JSON body, never a stack trace) or it completed after the restart.
    expect(res.headers['content-type']).toMatch(/json/);
    const again = await eventually('the FHIR write after recovery', async () => {
      const r = await put();
      return r.statusCode === 200 ? r : undefined;
    });
    expect(again.json().name[0].family).toBe('AfterKill');
    await expectAudited(String(res.headers['x-request-id']));
  }, 300_000);
});
