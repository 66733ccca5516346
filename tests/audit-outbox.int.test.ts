/**
 * The durable audit outbox (EHR_AUDIT_OUTBOX_DIR, src/audit/outbox.ts) against the real PostgreSQL (a read's
 * event is durable before the response completes, or it goes through a durable outbox that a crash cannot lose): a read's event is on disk when its response has completed; it reaches the hash chain exactly
 * once (shipped, or recovered after a crash, torn tail dropped, already-stored ids skipped); a database that refuses
 * events does not fail reads and loses nothing; one process per directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { OutboxLockedError } from '../src/audit/outbox.ts';
import { renderItem } from '../src/audit/compact.ts';
import { parseSegment, segmentLines, segmentName } from '../src/audit/outbox-segment.ts';
import { appendAuditEvents, verifyChain } from '../src/audit/store.ts';
import { testApp } from './helpers/app.ts';
import { eventOf, eventsOf, withAuditRefusing } from './helpers/audit.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';

/** Long enough that nothing ships by itself during a test: shipping happens only when a test asks for it. */
const NEVER_MS = 60_000;

let base: FastifyInstance; // the default mode: events straight to PostgreSQL
let patient: Patient;
let admin: { authorization: string };
let auditor: { authorization: string };
const opened: FastifyInstance[] = [];

const dirs: string[] = [];
const outboxDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-outbox-'));
  dirs.push(dir);
  return dir;
};
const outboxApp = async (dir: string, shipMs = NEVER_MS) => {
  const app = await testApp({ auditOutboxDir: dir, auditOutboxShipMs: shipMs });
  opened.push(app);
  return app;
};
const readPatient = (app: FastifyInstance, requestId: string) =>
  app.inject({
    method: 'GET',
    url: `/fhir/Patient/${patient.id}`,
    headers: { ...admin, 'x-request-id': requestId },
  });
/** The request ids of the events in the outbox's segment files. */
const onDisk = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.startsWith('segment-'))
    .flatMap((f) => parseSegment(readFileSync(join(dir, f), 'utf8')).events)
    .map((e) => renderItem(e).entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value ?? '');
const storedCount = async (requestId: string) =>
  Number(await base.db.oneFirst(sql.unsafe`SELECT count(*) FROM audit_event WHERE request_id = ${requestId}`));

beforeAll(async () => {
  base = await testApp();
  admin = bearer(await adminToken(base));
  auditor = bearer(
    await tokenFor(base, { user: { username: uniq('auditor'), roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
  const res = await base.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { ...admin, 'content-type': 'application/fhir+json' },
    payload: { resourceType: 'Patient', name: [{ family: uniq('Outbox') }] },
  });
  expect(res.statusCode).toBe(201);
  patient = res.json();
});

afterAll(async () => {
  for (const app of opened) await app.close().catch(() => undefined);
  await base?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('a read with the outbox', () => {
  test('its event is on disk when the response completes, and in the chain once shipped', async () => {
    const dir = outboxDir();
    const app = await outboxApp(dir);
    const id = uniq('outbox-read');
    const res = await readPatient(app, id);
    expect(res.statusCode).toBe(200);
    // Durable locally, not yet in PostgreSQL.
    expect(onDisk(dir)).toEqual([id]);
    expect(await storedCount(id)).toBe(0);

    // An AuditEvent search in this process ships the outbox first, so the auditor sees the read.
    const search = await app.inject({
      method: 'GET',
      url: `/fhir/AuditEvent?patient=Patient/${patient.id}&_count=100`,
      headers: auditor,
    });
    expect(search.statusCode).toBe(200);
    const found = (search.json().entry ?? []).map((e: { resource: AuditEvent }) => e.resource);
    expect(found.some((e: AuditEvent) => JSON.stringify(e).includes(id))).toBe(true);
    const event = await eventOf(base, res);
    expect(event.entity?.some((e) => e.what?.reference === `Patient/${patient.id}`)).toBe(true);
    // The shipped segment is deleted; what is on disk now is the search's own event (itself a read).
    expect(onDisk(dir)).toEqual([search.headers['x-request-id']]);
    expect((await verifyChain(base.db)).ok).toBe(true);
  });

  test('closing the process ships what it still holds', async () => {
    const dir = outboxDir();
    const app = await outboxApp(dir);
    const ids = [uniq('outbox-close'), uniq('outbox-close')];
    for (const id of ids) expect((await readPatient(app, id)).statusCode).toBe(200);
    expect(onDisk(dir).sort()).toEqual([...ids].sort());
    await app.close();
    for (const id of ids) expect(await storedCount(id)).toBe(1);
    expect(onDisk(dir)).toEqual([]);
  });

  test('events are shipped by themselves after the ship interval', async () => {
    const dir = outboxDir();
    const app = await outboxApp(dir, 20);
    const id = uniq('outbox-timer');
    expect((await readPatient(app, id)).statusCode).toBe(200);
    await expect.poll(() => storedCount(id), { timeout: 5000 }).toBe(1);
    expect(app.auditOutbox?.pending).toBe(0);
  });
});

describe('when PostgreSQL refuses the events', () => {
  test('reads are still answered, nothing is lost, and the events ship once it accepts them', async () => {
    const dir = outboxDir();
    const app = await outboxApp(dir);
    const ids = [uniq('outbox-refused'), uniq('outbox-refused')];
    await withAuditRefusing(base, 'outbox_test_refuse', 'outbox-refused', async () => {
      for (const id of ids) expect((await readPatient(app, id)).statusCode).toBe(200);
      await expect(app.auditOutbox?.drain()).rejects.toThrow();
      expect(app.auditOutbox?.stats.shipFailures).toBeGreaterThan(0);
      expect(onDisk(dir).sort()).toEqual([...ids].sort());
      for (const id of ids) expect(await storedCount(id)).toBe(0);
    });
    await app.auditOutbox?.drain();
    for (const id of ids) expect(await storedCount(id)).toBe(1);
    expect(onDisk(dir)).toEqual([]);
    expect((await verifyChain(base.db)).ok).toBe(true);
  });
});

describe('after a crash', () => {
  test('left-over segments are shipped on start: torn tail dropped, stored ids skipped, each event once', async () => {
    // Real events as this facade builds them, given new ids and request ids.
    const template = (
      await eventsOf(base, String((await readPatient(base, uniq('outbox-tpl'))).headers['x-request-id']))
    )[0];
    expect(template).toBeDefined();
    const make = (requestId: string): AuditEvent => ({
      ...(template as AuditEvent),
      id: crypto.randomUUID(),
      entity: (template?.entity ?? []).map((e) =>
        e.type?.code === 'XrequestId' ? { ...e, what: { identifier: { value: requestId } } } : e,
      ),
    });
    const [stored, first, second] = [
      make(uniq('outbox-crash')),
      make(uniq('outbox-crash')),
      make(uniq('outbox-crash')),
    ];
    // The crashed process had shipped `stored` (its commit went through) but not yet deleted its segment.
    await appendAuditEvents(base.db, [stored as AuditEvent]);

    const dir = outboxDir();
    writeFileSync(join(dir, segmentName(7)), segmentLines([stored as AuditEvent, first as AuditEvent]));
    writeFileSync(
      join(dir, segmentName(8)),
      `${segmentLines([second as AuditEvent])}{"resourceType":"AuditEvent","id":"torn`,
    );
    // Its LOCK names a process that is gone.
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'LOCK'), gone.stdout);

    const app = await outboxApp(dir);
    expect(app.auditOutbox?.stats).toMatchObject({ recovered: 3, skippedDuplicates: 1, tornLines: 1, shipped: 2 });
    for (const e of [stored, first, second]) {
      const requestId = e?.entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value as string;
      expect(await storedCount(requestId)).toBe(1);
    }
    expect(readdirSync(dir).filter((f) => f.startsWith('segment-'))).toEqual([]);
    // New segments continue after the recovered numbers.
    expect((await readPatient(app, uniq('outbox-after'))).statusCode).toBe(200);
    expect(readdirSync(dir).filter((f) => f.startsWith('segment-'))).toEqual([segmentName(9)]);
    expect((await verifyChain(base.db)).ok).toBe(true);
  });

  test('a corrupt segment is set aside for an operator, not shipped and not deleted', async () => {
    const dir = outboxDir();
    writeFileSync(join(dir, segmentName(1)), 'not json\n{"resourceType":"AuditEvent","id":"x"}\n');
    const app = await outboxApp(dir);
    expect(app.auditOutbox?.stats.recovered).toBe(0);
    expect(readdirSync(dir)).toContain(`${segmentName(1)}.corrupt`);
  });
});

describe('one process per directory', () => {
  test('a second facade cannot open a directory in use, and can once the first has closed', async () => {
    const dir = outboxDir();
    const first = await outboxApp(dir);
    await expect(testApp({ auditOutboxDir: dir })).rejects.toBeInstanceOf(OutboxLockedError);
    // A live process of another pid holds it too.
    const other = outboxDir();
    writeFileSync(join(other, 'LOCK'), `${process.ppid}\n`);
    await expect(testApp({ auditOutboxDir: other })).rejects.toBeInstanceOf(OutboxLockedError);
    await first.close();
    const second = await outboxApp(dir);
    expect(second.auditOutbox).not.toBeNull();
  });
});
