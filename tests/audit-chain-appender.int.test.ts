/**
 * The one-statement chain append (src/audit/chain-appender.ts) against the real PostgreSQL: it links after the head it
 * remembers, notices when another writer moved the head (another appender, the locking append of a FHIR write), links
 * again without writing anything twice, and the chain stays linear and verifiable; racing appenders never fork it.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ChainAppender, MAX_ATTEMPTS } from '../src/audit/chain-appender.ts';
import { appendAuditEvent, readChainHead, verifyChain } from '../src/audit/store.ts';
import { testApp } from './helpers/app.ts';
import { uniq } from './helpers/fhir.ts';

let app: FastifyInstance;

beforeAll(async () => {
  app = await testApp();
});

afterAll(async () => {
  await app?.close();
});

const event = (tag: string): AuditEvent => ({
  resourceType: 'AuditEvent',
  type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110', display: 'Patient Record' },
  action: 'R',
  recorded: new Date().toISOString(),
  outcome: '0',
  agent: [{ requestor: true, who: { display: tag } }],
  source: { observer: { display: 'chain-appender test' } },
  entity: [{ what: { identifier: { value: tag } } }],
});

const seqsOf = async (tags: readonly string[]) =>
  (
    (await app.db.any(sql.unsafe`
      SELECT seq, content->'entity'->0->'what'->'identifier'->>'value' AS tag FROM audit_event
       WHERE content->'entity'->0->'what'->'identifier'->>'value' = ANY(${sql.array(tags, 'text')})
       ORDER BY seq`)) as readonly { seq: number | bigint; tag: string }[]
  ).map((r) => ({ seq: Number(r.seq), tag: r.tag }));

test('a batch is linked right after the head, in order, in one statement; the head moves to its last event', async () => {
  const appender = new ChainAppender(app.db);
  const tags = [uniq('batch'), uniq('batch'), uniq('batch')];
  const before = await readChainHead(app.db);
  const stored = await appender.append(tags.map(event));
  expect(stored.map((s) => s.seq)).toEqual([before.seq + 1, before.seq + 2, before.seq + 3]);
  expect((await seqsOf(tags)).map((r) => r.tag)).toEqual(tags);
  const head = await readChainHead(app.db);
  expect(head).toEqual({ seq: before.seq + 3, hash: stored[2]?.hash });
  expect(appender.stats).toEqual({ optimistic: 1, retries: 0, locked: 0 });
  expect((await verifyChain(app.db)).ok).toBe(true);
});

test.each([
  ['another appender', async (tag: string) => new ChainAppender(app.db).append([event(tag)])],
  ['the locking append of a write', async (tag: string) => [await appendAuditEvent(app.db, event(tag))]],
])('when %s moved the head, the batch is linked again after it and nothing is written twice', async (_, other) => {
  const appender = new ChainAppender(app.db);
  const first = uniq('mine');
  await appender.append([event(first)]); // now it remembers the head
  const theirs = uniq('theirs');
  await other(theirs);
  const mine = [uniq('mine'), uniq('mine')];
  const stored = await appender.append(mine.map(event));
  expect(appender.stats.retries).toBe(1);
  expect(appender.stats.locked).toBe(0);
  const rows = await seqsOf([first, theirs, ...mine]);
  expect(rows.map((r) => r.tag)).toEqual([first, theirs, ...mine]);
  expect(rows.slice(2).map((r) => r.seq)).toEqual(stored.map((s) => s.seq));
  expect((await verifyChain(app.db)).ok).toBe(true);
});

test('racing appenders (and locking appends) never fork or gap the chain', async () => {
  const appenders = Array.from({ length: 4 }, () => new ChainAppender(app.db));
  const tags: string[] = [];
  await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const tag = uniq(`race-${i}`);
      tags.push(tag);
      if (i % 10 === 9) await appendAuditEvent(app.db, event(tag));
      else await appenders[i % 4]?.append([event(tag)]);
    }),
  );
  const rows = await seqsOf(tags);
  expect(new Set(rows.map((r) => r.tag)).size).toBe(40);
  expect(rows).toHaveLength(40);
  const verified = await verifyChain(app.db);
  expect(verified.ok).toBe(true);
  const lost = appenders.reduce((n, a) => n + a.stats.retries, 0);
  const locked = appenders.reduce((n, a) => n + a.stats.locked, 0);
  // Every lost race was retried; a writer that lost MAX_ATTEMPTS times fell back to the lock.
  expect(lost).toBeGreaterThanOrEqual(locked * MAX_ATTEMPTS);
});

test('a batch that cannot be stored writes nothing and leaves the head where it was', async () => {
  const appender = new ChainAppender(app.db);
  const ok = uniq('ok');
  await appender.append([event(ok)]);
  const head = await readChainHead(app.db);
  const dup = { ...event(uniq('dup')), id: '6f1f4e1e-1111-4111-8111-111111111111' };
  await appender.append([dup]);
  // The second event reuses an id that is already stored (UNIQUE): the whole statement fails.
  const bad = [event(uniq('bad')), { ...event(uniq('bad')), id: dup.id }];
  await expect(appender.append(bad)).rejects.toThrow();
  const after = await readChainHead(app.db);
  expect(after.seq).toBe(head.seq + 1);
  expect(await seqsOf(bad.map((e) => e.entity?.[0]?.what?.identifier?.value as string))).toEqual([]);
  expect((await verifyChain(app.db)).ok).toBe(true);
});

/**
 * Holds the chain head for a moment in the transaction that inserts the event with `id` (a BEFORE INSERT trigger that
 * sleeps, then refuses it when `refuse`), so that a batch sent meanwhile meets a batch still in flight.
 */
async function withSlowInsert<T>(id: string, refuse: boolean, fn: () => Promise<T>): Promise<T> {
  const name = sql.identifier([`slow_${refuse ? 'refuse' : 'pass'}`]);
  await app.db.query(sql.unsafe`
    CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_sleep(0.3);
      ${refuse ? sql.fragment`RAISE EXCEPTION 'refused (test)';` : sql.fragment``}
      RETURN NEW;
    END $$`);
  await app.db.query(sql.unsafe`
    CREATE TRIGGER ${name} BEFORE INSERT ON audit_event FOR EACH ROW
      WHEN (NEW.id = ${sql.literalValue(id)}::uuid) EXECUTE FUNCTION ${name}()`);
  try {
    return await fn();
  } finally {
    await app.db.query(sql.unsafe`DROP TRIGGER ${name} ON audit_event`);
    await app.db.query(sql.unsafe`DROP FUNCTION ${name}()`);
  }
}

/** Resolves once an `audit_append` statement is inside the slow insert trigger (its pg_sleep), i.e. holds the head. */
async function holdingHead(): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const n = Number(
      await app.db.oneFirst(sql.unsafe`
        SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event = 'PgSleep' AND query LIKE '%audit_append%'`),
    );
    if (n > 0) return;
    if (Date.now() > deadline) throw new Error('the first batch never reached its slow insert');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test.each([
  ['commits', false],
  ['fails', true],
])(
  'a batch sent while another is in flight: when that one %s, it is linked right after the head',
  async (_, refuse) => {
    const appender = new ChainAppender(app.db);
    await appender.append([event(uniq('pipe-warm'))]); // now it remembers the head
    const head = await readChainHead(app.db);
    const slowId = randomUUID();
    const first = [uniq('pipe-first')];
    const second = [uniq('pipe-second'), uniq('pipe-second')];
    const [a, b] = await withSlowInsert(slowId, refuse, async () => {
      const one = appender.append(first.map((t) => ({ ...event(t), id: slowId })));
      // The second batch is sent only once the first holds the chain head (its slow insert is running): which of two
      // statements on two connections reaches PostgreSQL first is otherwise up to the pool and the scheduler.
      await holdingHead();
      const two = appender.append(second.map(event));
      return Promise.allSettled([one, two]);
    });
    expect(a.status).toBe(refuse ? 'rejected' : 'fulfilled');
    expect(b.status).toBe('fulfilled');
    const rows = await seqsOf([...first, ...second]);
    const expected = refuse ? second : [...first, ...second];
    expect(rows.map((r) => r.tag)).toEqual(expected);
    expect(rows.map((r) => r.seq)).toEqual(expected.map((_, i) => head.seq + 1 + i));
    expect(await readChainHead(app.db)).toEqual({ seq: head.seq + expected.length, hash: expect.any(String) });
    expect((await verifyChain(app.db)).ok).toBe(true);
    // And the appender goes on after its own head.
    const next = await appender.append([event(uniq('pipe-next'))]);
    expect(next[0]?.seq).toBe(head.seq + expected.length + 1);
  },
);
