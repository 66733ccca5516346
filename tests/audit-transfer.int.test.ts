/**
 * Study transfers on the real stack (src/audit/transfer-window.ts): a caller's successful WADO-RS retrievals of one
 * study within the window form one transfer. The first retrieval's event is durable before its response completes;
 * the later ones are counted and written as one closing event (sharing the first request's id) when the window ends
 * or the process shuts down. Denials and other callers are recorded as before.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { eventOf, eventsOf, patientsOf, studyUidsOf, withAuditRefusing } from './helpers/audit.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';

let app: FastifyInstance;
let data: Dataset;
let patA: { authorization: string };
let admin: { authorization: string };
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  app = await testApp();
  data = await seedDataset(app, `aut${Date.now().toString(36)}`);
  patA = bearer(
    await tokenFor(app, {
      user: { username: `autpat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
  admin = bearer(await adminToken(app));
});
afterAll(async () => {
  for (const a of apps) await a.close().catch(() => undefined);
  await app?.close();
});

/** A second facade process on the same stack, with its own transfer windows. */
async function facade(windowS: number): Promise<FastifyInstance> {
  const a = await testApp({ auditTransferWindowS: windowS });
  apps.push(a);
  return a;
}

/** The frame and metadata URLs of patient A's first study (each instance's first frame, then the series metadata). */
function studyUrls(): { study: string; urls: string[]; frames: number } {
  const study = data.A.studies[0];
  const series = study?.series[0];
  if (!study || !series) throw new Error('dataset without a study');
  const frames = series.instances.map(
    (i) => `/dicom-web/studies/${study.uid}/series/${series.uid}/instances/${i}/frames/1`,
  );
  return {
    study: study.uid,
    urls: [...frames, `/dicom-web/studies/${study.uid}/series/${series.uid}/metadata`],
    frames: frames.length,
  };
}

/** A GET over a real socket (the byte count comes from it), with the Accept a viewer sends. */
async function get(a: FastifyInstance, url: string, headers: { authorization: string }) {
  const accept = url.endsWith('/metadata')
    ? 'application/dicom+json'
    : 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
  // identity: the body's length is then what crossed the wire.
  const res = await fetch(`${await baseOf(a)}${url}`, {
    headers: { ...headers, accept, 'accept-encoding': 'identity' },
  });
  const body = await res.arrayBuffer();
  return { status: res.status, requestId: String(res.headers.get('x-request-id')), bytes: body.byteLength };
}

const bases = new Map<FastifyInstance, string>();
async function baseOf(a: FastifyInstance): Promise<string> {
  let base = bases.get(a);
  if (!base) {
    base = await a.listen({ port: 0, host: '127.0.0.1' });
    bases.set(a, base);
  }
  return base;
}

const detail = (e: AuditEvent, type: string) =>
  Number(e.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === type)?.valueString);

test('one transfer: the first retrieval is durable before its answer, the rest close the window at shutdown', async () => {
  const a = await facade(300);
  const { study, urls, frames } = studyUrls();
  const first = await get(a, urls[0] as string, patA);
  expect(first.status).toBe(200);
  // Durable before the response completed: stored already, as the only event of the request.
  const opening = await eventOf(app, { headers: { 'x-request-id': first.requestId } });
  expect(opening.type?.code).toBe('110104');
  expect(opening.period).toBeUndefined();
  expect(studyUidsOf(opening)).toEqual([study]);

  const later = [];
  for (const url of urls.slice(1)) later.push(await get(a, url, patA));
  expect(later.map((r) => r.status)).toEqual(urls.slice(1).map(() => 200));
  for (const r of later) expect(await eventsOf(app, r.requestId)).toEqual([]);

  // A denial is recorded each time, window or not.
  const denied = await get(a, `/dicom-web/studies/${data.B.studies[0]?.uid}/metadata`, patA);
  expect(denied.status).toBe(404);
  expect((await eventOf(app, { headers: { 'x-request-id': denied.requestId } })).outcome).toBe('4');

  await a.close();
  const events = await eventsOf(app, first.requestId);
  expect(events).toHaveLength(2);
  const closing = events[1] as AuditEvent;
  expect(closing.type?.code).toBe('110104');
  expect(studyUidsOf(closing)).toEqual([study]);
  expect(patientsOf(closing)).toEqual([`Patient/${data.A.id}`]);
  expect(closing.agent).toEqual(opening.agent);
  expect(detail(closing, 'retrievals')).toBe(urls.length);
  expect(detail(closing, 'frames')).toBe(frames);
  expect(detail(closing, 'instances')).toBe(frames);
  expect(detail(closing, 'series')).toBe(1);
  expect(detail(closing, 'bytes')).toBeGreaterThanOrEqual([first, ...later].reduce((n, r) => n + r.bytes, 0));
  expect(Date.parse(closing.period?.end ?? '')).toBeGreaterThanOrEqual(Date.parse(closing.period?.start ?? 'x'));
});

test('a window ends on its own: its closing event is written, and the next retrieval opens a new window', async () => {
  const a = await facade(1);
  const { urls } = studyUrls();
  const first = await get(a, urls[0] as string, patA);
  const second = await get(a, urls[1] as string, patA);
  expect(await eventsOf(app, second.requestId)).toEqual([]);
  const deadline = Date.now() + 10_000;
  let events = await eventsOf(app, first.requestId);
  while (events.length < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    events = await eventsOf(app, first.requestId);
  }
  expect(events).toHaveLength(2);
  expect(detail(events[1] as AuditEvent, 'retrievals')).toBe(2);
  const next = await get(a, urls[2] as string, patA);
  expect(await eventsOf(app, next.requestId)).toHaveLength(1);
});

test('another caller of the same study has a window of its own', async () => {
  const a = await facade(300);
  const { urls } = studyUrls();
  await get(a, urls[0] as string, patA);
  const other = await get(a, urls[1] as string, admin);
  expect(other.status).toBe(200);
  expect(await eventsOf(app, other.requestId)).toHaveLength(1);
});

test('with the window off every retrieval has its own event', async () => {
  const a = await facade(0);
  const { urls } = studyUrls();
  const ids: string[] = [];
  for (const url of urls.slice(0, 3)) {
    const r = await get(a, url, patA);
    expect(r.status).toBe(200);
    expect(await eventsOf(app, r.requestId)).toHaveLength(1);
    ids.push(r.requestId);
  }
  await a.close();
  // Nothing more at shutdown: no window was open.
  const stored = await app.db.oneFirst(
    sql.unsafe`SELECT count(*) FROM audit_event WHERE request_id = ANY(${sql.array(ids, 'text')})`,
  );
  expect(Number(stored)).toBe(3);
});

test('an opening event that cannot be stored withholds its answer, and the next retrieval opens a window again', async () => {
  const a = await facade(300);
  const { urls } = studyUrls();
  const url = `${await baseOf(a)}${urls[0]}`;
  const headers = { ...patA, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
  await withAuditRefusing(app, 'transfer_test_refuse', 'xfer-fail', async () => {
    const res = await fetch(url, { headers: { ...headers, 'x-request-id': `xfer-fail-${Date.now()}` } });
    // A 503 when nothing had left yet, otherwise a body that never completes.
    if (res.status !== 503) await expect(res.arrayBuffer()).rejects.toThrow();
  });
  const again = await get(a, urls[1] as string, patA);
  expect(again.status).toBe(200);
  expect(await eventsOf(app, again.requestId)).toHaveLength(1);
});
