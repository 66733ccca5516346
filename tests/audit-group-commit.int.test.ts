/**
 * Audit group commit against the real PostgreSQL: read events are
 * appended in batches by one writer per process, yet every response is sent only after its event committed, the chain
 * stays linear and verifiable with two processes' writers (two apps, two pools) appending at once, and a batch that
 * cannot be stored turns its responses into 503s and leaves nothing behind.
 */
import type { Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { verifyChain } from '../src/audit/store.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { withAuditRefusing } from './helpers/audit.ts';
import { uniq } from './helpers/fhir.ts';

let a: FastifyInstance;
let b: FastifyInstance;
let baseA: string;
let baseB: string;
let patient: Patient;
let doctor: { authorization: string };

const listen = async (app: FastifyInstance) => app.listen({ port: 0, host: '127.0.0.1' });
const eventCount = async (app: FastifyInstance) =>
  Number(await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event`));
const eventExists = async (app: FastifyInstance, requestId: string) =>
  (await app.db.maybeOne(sql.unsafe`SELECT 1 FROM audit_event WHERE request_id = ${requestId}`)) !== null;

beforeAll(async () => {
  a = await testApp();
  b = await testApp();
  baseA = await listen(a);
  baseB = await listen(b);
  const admin = bearer(await adminToken(a));
  const res = await fetch(`${baseA}/fhir/Patient`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Patient', name: [{ family: uniq('GroupCommit') }], birthDate: '1980-01-01' }),
  });
  expect(res.status).toBe(201);
  patient = (await res.json()) as Patient;
  const doctorName = uniq('gc-doc');
  doctor = bearer(await tokenFor(a, { user: { username: doctorName, roles: ['doctor'] }, scope: 'user/*.rs' }));
  await grantPatient(a, doctorName, patient.id as string);
});

afterAll(async () => {
  await a?.close();
  await b?.close();
});

test('200 concurrent reads from two processes: 200 events, each committed before its response, one verifiable chain', async () => {
  const before = await eventCount(a);
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const requestId = `gc-ok-${i}-${uniq('r')}`;
      const res = await fetch(`${i % 2 ? baseB : baseA}/fhir/Patient/${patient.id}`, {
        headers: { ...doctor, 'x-request-id': requestId },
      });
      // The response has arrived: its event must already be committed (checked before reading the body).
      const stored = await eventExists(a, requestId);
      await res.arrayBuffer();
      return { status: res.status, echoed: res.headers.get('x-request-id'), requestId, stored };
    }),
  );
  for (const r of results) {
    expect(r.status).toBe(200);
    expect(r.echoed).toBe(r.requestId);
    expect(r.stored, `event of ${r.requestId} committed before its response`).toBe(true);
  }
  expect((await eventCount(a)) - before).toBe(200);
  const ids = results.map((r) => r.requestId);
  const rows = (await a.db.any(sql.unsafe`
    SELECT request_id, xmin::text AS tx FROM audit_event WHERE request_id = ANY(${sql.array(ids, 'text')})`)) as readonly {
    request_id: string;
    tx: string;
  }[];
  expect(new Set(rows.map((r) => r.request_id)).size).toBe(200);
  expect(rows).toHaveLength(200);
  // Group commit happened: events share transactions (fewer commits than events).
  expect(new Set(rows.map((r) => r.tx)).size).toBeLessThan(200);
  const verified = await verifyChain(a.db);
  expect(verified).toMatchObject({ ok: true, events: await eventCount(a) });
});

test('no response leaves while its batch cannot commit (the chain head is locked elsewhere)', async () => {
  const received: string[] = [];
  const before = await eventCount(a);
  let pending: Promise<{ status: number; requestId: string }[]> | undefined;
  // A third session (plain pg, outside the apps' pools) holds the chain-head lock.
  const holder = new pg.Client({ connectionString: testConfig().databaseUrl });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM audit_chain_head WHERE singleton FOR UPDATE');
    pending = Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const requestId = `gc-held-${i}-${uniq('r')}`;
        const res = await fetch(`${i % 2 ? baseB : baseA}/fhir/Patient/${patient.id}`, {
          headers: { ...doctor, 'x-request-id': requestId },
        });
        received.push(requestId);
        await res.arrayBuffer();
        return { status: res.status, requestId };
      }),
    );
    // Wait until both writers are blocked on the chain-head lock with a batch in hand.
    for (;;) {
      const waiting = Number(
        await a.db.oneFirst(sql.unsafe`
          SELECT count(*) FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND (query LIKE '%audit_chain_head%' OR query LIKE '%audit_append%')`),
      );
      if (waiting >= 2) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(received).toEqual([]);
    await holder.query('COMMIT');
  } finally {
    await holder.end();
  }
  const results = await (pending as Promise<{ status: number; requestId: string }[]>);
  expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
  expect((await eventCount(a)) - before).toBe(20);
  expect((await verifyChain(a.db)).ok).toBe(true);
});

test('a batch that cannot be stored: every response of it is a 503 and nothing is half-written', async () => {
  const headBefore = await a.db.one(sql.unsafe`SELECT last_seq, last_hash FROM audit_chain_head WHERE singleton`);
  const countBefore = await eventCount(a);
  const tag = uniq('gc-fail').replace(/[^A-Za-z0-9-]/g, '');
  await withAuditRefusing(a, 'gc_test_refuse', 'gc-fail-', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const res = await fetch(`${baseA}/fhir/Patient/${patient.id}`, {
          headers: { ...doctor, 'x-request-id': `${tag}-${i}` },
        });
        return {
          status: res.status,
          body: (await res.json()) as { resourceType?: string; issue?: { code: string }[] },
        };
      }),
    );
    for (const r of results) {
      expect(r.status).toBe(503);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue?.[0]?.code).toBe('transient');
      expect(JSON.stringify(r.body)).not.toContain(patient.id as string);
    }
  });
  expect(await eventCount(a)).toBe(countBefore);
  expect(await a.db.one(sql.unsafe`SELECT last_seq, last_hash FROM audit_chain_head WHERE singleton`)).toEqual(
    headBefore,
  );
  expect(
    Number(await a.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event WHERE request_id LIKE ${`${tag}-%`}`)),
  ).toBe(0);
  // The writer recovers: the next read is stored and answered.
  const ok = await fetch(`${baseA}/fhir/Patient/${patient.id}`, { headers: doctor });
  expect(ok.status).toBe(200);
  expect((await verifyChain(a.db)).ok).toBe(true);
});
