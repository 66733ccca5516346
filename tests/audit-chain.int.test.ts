/**
 * Tamper evidence, durability and retention of the audit store against the real PostgreSQL: the chain is
 * linear under concurrent appends; changing one stored event's JSON through SQL makes `bin/ehr audit verify` report
 * that event; the table refuses UPDATE/DELETE; export writes NDJSON for a date range; pruning keeps the chain
 * verifiable through a checkpoint.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { fhirRestEvent } from '../src/audit/balp.ts';
import { runAuditCommand } from '../src/audit/cli.ts';
import { appendAuditEvent, verifyChain } from '../src/audit/store.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { ehrAudit } from './helpers/audit.ts';
import { adminToken, bearer } from './helpers/auth.ts';

let app: FastifyInstance;
let auth: { authorization: string };

const event = (requestId: string, recorded = new Date()): AuditEvent =>
  fhirRestEvent(
    {
      recorded: recorded.toISOString(),
      requestId,
      network: '127.0.0.1',
      serverBaseUrl: 'http://localhost:8000',
      agent: { who: 'test', sub: 'test', roles: [] },
      outcome: '0',
    },
    { interaction: 'read', resourceType: 'Patient', id: 'p-chain', patientIds: ['p-chain'] },
  );

beforeAll(async () => {
  app = await testApp();
  auth = bearer(await adminToken(app));
});

afterAll(async () => {
  await app?.close();
});

test('concurrent appends make one linear chain; verify says "ok, N events"', async () => {
  await Promise.all(Array.from({ length: 25 }, (_, i) => appendAuditEvent(app.db, event(`chain-${i}`))));
  await Promise.all(Array.from({ length: 5 }, () => request(app.server).get('/fhir/Patient?_count=1').set(auth)));
  const r = await verifyChain(app.db);
  expect(r.ok).toBe(true);
  const n = Number(await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event`));
  expect(r.events).toBe(n);
  const cli = await ehrAudit('verify');
  expect(cli.code, cli.stderr).toBe(0);
  expect(cli.stdout).toMatch(new RegExp(`^ok, ${n} events`));
});

test('the table itself refuses UPDATE and DELETE', async () => {
  await expect(app.db.query(sql.unsafe`UPDATE audit_event SET outcome = '8' WHERE seq = 1`)).rejects.toThrow(
    /append-only/,
  );
  await expect(app.db.query(sql.unsafe`DELETE FROM audit_event WHERE seq = 1`)).rejects.toThrow(/append-only/);
});

test("changing one stored event's JSON through SQL makes `audit verify` report that event", async () => {
  const target = await appendAuditEvent(app.db, event('chain-victim'));
  await appendAuditEvent(app.db, event('chain-after'));
  const original = target.event;
  const setContent = async (content: AuditEvent) => {
    await app.db.transaction(async (tx) => {
      await tx.query(sql.unsafe`ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only`);
      await tx.query(
        sql.unsafe`UPDATE audit_event SET content = ${sql.jsonb(content as never)} WHERE seq = ${target.seq}`,
      );
      await tx.query(sql.unsafe`ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only`);
    });
  };
  await setContent({ ...original, outcome: '8' });
  try {
    const cli = await ehrAudit('verify');
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`event #${target.seq} (${target.id}): content does not match its hash`);
  } finally {
    await setContent(original);
  }
  expect((await ehrAudit('verify')).code).toBe(0);
});

test('export writes NDJSON of the events in [since, until)', async () => {
  const a = await appendAuditEvent(app.db, event('chain-old', new Date('2001-02-03T10:00:00Z')));
  const b = await appendAuditEvent(app.db, event('chain-in', new Date('2001-02-04T10:00:00Z')));
  const lines: string[] = [];
  const io = { out: (t: string) => void lines.push(t), err: () => undefined };
  expect(
    await runAuditCommand(app.db, testConfig(), ['export', '--since', '2001-02-04', '--until', '2001-02-05'], io),
  ).toBe(0);
  const ids = lines
    .join('')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as AuditEvent).id);
  expect(ids).toContain(b.id);
  expect(ids).not.toContain(a.id);
  const cli = await ehrAudit('export', '--since', '2001-02-03', '--until', '2001-02-05');
  expect(cli.code).toBe(0);
  const all = cli.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditEvent);
  expect(all.map((e) => e.id)).toEqual(expect.arrayContaining([a.id, b.id]));
  expect(all.every((e) => e.resourceType === 'AuditEvent')).toBe(true);
});

test('prune removes old events behind a checkpoint; the rest still verifies and the chain goes on', async () => {
  const cut = new Date();
  const res = await request(app.server).get('/fhir/Patient?_count=1').set(auth);
  const before = Number(await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event`));
  const cli = await ehrAudit('prune', '--before', cut.toISOString());
  expect(cli.code, cli.stderr).toBe(0);
  expect(cli.stdout).toMatch(/^pruned \d+ events/);
  const left = Number(await app.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event`));
  expect(left).toBeLessThan(before);
  expect(
    await app.db.maybeOne(
      sql.unsafe`SELECT 1 FROM audit_event WHERE request_id = ${String(res.headers['x-request-id'])}`,
    ),
  ).not.toBeNull();
  await appendAuditEvent(app.db, event('chain-after-prune'));
  const r = await verifyChain(app.db);
  expect(r).toMatchObject({ ok: true, events: left + 1 });
  // Removing the oldest remaining event now breaks the link to the checkpoint.
  const oldest = Number(await app.db.oneFirst(sql.unsafe`SELECT min(seq) FROM audit_event`));
  await app.db.transaction(async (tx) => {
    await tx.query(
      sql.unsafe`CREATE TEMP TABLE removed ON COMMIT DROP AS SELECT * FROM audit_event WHERE seq = ${oldest}`,
    );
    await tx.query(sql.unsafe`SELECT set_config('ehr.audit_prune', 'on', true)`);
    await tx.query(sql.unsafe`DELETE FROM audit_event WHERE seq = ${oldest}`);
    await tx.query(sql.unsafe`CREATE TABLE audit_removed_copy AS SELECT * FROM removed`);
  });
  try {
    const broken = await ehrAudit('verify');
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`event #${oldest + 1}`);
    expect(broken.stderr).toContain('sequence gap');
  } finally {
    // Put the row back (INSERT is allowed) so that later test files find a sound chain.
    await app.db.query(sql.unsafe`INSERT INTO audit_event SELECT * FROM audit_removed_copy`);
    await app.db.query(sql.unsafe`DROP TABLE audit_removed_copy`);
  }
  expect((await verifyChain(app.db)).ok).toBe(true);
});
