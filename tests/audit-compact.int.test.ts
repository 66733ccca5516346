/**
 * Compact audit rows (src/audit/compact.ts) on the real stack: a read's event is stored as its compact record and
 * comes back as the BALP AuditEvent from every reader (FHIR read by id, search, export); a chain of compact rows and
 * full BALP rows (a FHIR write's event, committed in the write's transaction) verifies with `bin/ehr audit verify`,
 * and changing a compact row's record or one of its index columns through SQL is reported.
 */
import type { AuditEvent, Bundle, Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { fhirRestEvent } from '../src/audit/balp.ts';
import { runAuditCommand } from '../src/audit/cli.ts';
import { type AuditItem, type CompactAuditRecord, isCompact } from '../src/audit/compact.ts';
import { auditEventIssues } from '../src/audit/validate.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { ehrAudit } from './helpers/audit.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';

let app: FastifyInstance;
let admin: { authorization: string };
let auditor: { authorization: string };
let patient: Patient;

interface StoredRow {
  seq: number;
  id: string;
  content: AuditItem;
}
const rowOf = async (requestId: string): Promise<StoredRow> => {
  const row = (await app.db.one(
    sql.unsafe`SELECT seq::int AS seq, id::text AS id, content FROM audit_event WHERE request_id = ${requestId}`,
  )) as unknown as StoredRow;
  return row;
};
const readPatient = async (requestId: string) => {
  const res = await app.inject({
    method: 'GET',
    url: `/fhir/Patient/${patient.id}`,
    headers: { ...admin, 'x-request-id': requestId },
  });
  expect(res.statusCode).toBe(200);
};

/** Changes one stored row through SQL (the append-only trigger off for that), runs `fn`, and puts it back. */
async function tampered(seq: number, set: ReturnType<typeof sql.fragment>, fn: () => Promise<void>): Promise<void> {
  const original = (await app.db.one(sql.unsafe`SELECT content, patient_ids FROM audit_event WHERE seq = ${seq}`)) as {
    content: unknown;
    patient_ids: string[];
  };
  const update = async (assignment: ReturnType<typeof sql.fragment>) =>
    app.db.transaction(async (tx) => {
      await tx.query(sql.unsafe`ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only`);
      await tx.query(sql.unsafe`UPDATE audit_event SET ${assignment} WHERE seq = ${seq}`);
      await tx.query(sql.unsafe`ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only`);
    });
  await update(set);
  try {
    await fn();
  } finally {
    await update(
      sql.fragment`content = ${sql.jsonb(original.content as never)}, patient_ids = ${sql.array(original.patient_ids, 'text')}`,
    );
  }
}

beforeAll(async () => {
  app = await testApp();
  admin = bearer(await adminToken(app));
  auditor = bearer(
    await tokenFor(app, { user: { username: uniq('auditor'), roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
  const res = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { ...admin, 'content-type': 'application/fhir+json' },
    payload: { resourceType: 'Patient', name: [{ family: uniq('Compact') }] },
  });
  expect(res.statusCode).toBe(201);
  patient = res.json();
});

afterAll(async () => {
  await app?.close();
});

test("a read's event is stored compact and read back, searched and exported as its BALP AuditEvent", async () => {
  const requestId = uniq('compact-read');
  await readPatient(requestId);
  const row = await rowOf(requestId);
  expect(isCompact(row.content)).toBe(true);
  const record = row.content as CompactAuditRecord;
  expect(record.id).toBe(row.id);
  // What the BALP builder makes of the request: a Patient read by this caller, this patient in its compartment.
  const balp = {
    ...fhirRestEvent(record.base, {
      interaction: 'read',
      resourceType: 'Patient',
      id: patient.id,
      patientIds: [patient.id as string],
    }),
    id: row.id,
  };
  const expected = JSON.parse(JSON.stringify(balp)) as AuditEvent;
  expect(auditEventIssues(expected)).toEqual([]);
  expect(expected.entity?.find((e) => e.type?.code === 'XrequestId')?.what?.identifier?.value).toBe(requestId);
  expect(expected.agent?.find((a) => a.requestor)?.role).toEqual([{ text: 'admin' }]);

  const read = await app.inject({ method: 'GET', url: `/fhir/AuditEvent/${row.id}`, headers: auditor });
  expect(read.statusCode).toBe(200);
  expect(read.json()).toEqual(expected);

  const search = await app.inject({
    method: 'GET',
    url: `/fhir/AuditEvent?request-id=${requestId}&patient=${patient.id}&subtype=read`,
    headers: auditor,
  });
  expect(search.statusCode).toBe(200);
  const bundle = search.json() as Bundle<AuditEvent>;
  expect(bundle.total).toBe(1);
  expect(bundle.entry?.[0]?.resource).toEqual(expected);

  const lines: string[] = [];
  const io = { out: (t: string) => void lines.push(t), err: () => undefined };
  expect(await runAuditCommand(app.db, testConfig(), ['export'], io)).toBe(0);
  const exported = lines
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditEvent)
    .find((e) => e.id === row.id);
  expect(exported).toEqual(expected);
});

test('a chain of compact and BALP rows verifies; a changed compact row is reported', async () => {
  // A FHIR write's event is committed in the write's own transaction, as a BALP row; reads go compact.
  const write = await app.inject({
    method: 'PUT',
    url: `/fhir/Patient/${patient.id}`,
    headers: { ...admin, 'content-type': 'application/fhir+json', 'x-request-id': uniq('compact-write') },
    payload: { ...patient, name: [{ family: uniq('Compacted') }] },
  });
  expect(write.statusCode).toBe(200);
  const requestId = uniq('compact-victim');
  await readPatient(requestId);
  await readPatient(uniq('compact-after'));
  const forms = (await app.db.any(sql.unsafe`SELECT content FROM audit_event ORDER BY seq`)).map((r) =>
    isCompact((r as { content: unknown }).content),
  );
  expect(forms).toContain(true);
  expect(forms).toContain(false);

  const ok = await ehrAudit('verify');
  expect(ok.code, ok.stderr).toBe(0);
  expect(ok.stdout).toMatch(new RegExp(`^ok, ${forms.length} events`));

  const victim = await rowOf(requestId);
  const record = victim.content as CompactAuditRecord;
  const where = `event #${victim.seq} (${victim.id})`;
  await tampered(
    victim.seq,
    sql.fragment`content = ${sql.jsonb({ ...record, base: { ...record.base, outcome: '8' } } as never)}`,
    async () => {
      const cli = await ehrAudit('verify');
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain(`${where}: content does not match its hash`);
    },
  );
  await tampered(victim.seq, sql.fragment`patient_ids = ${sql.array(['someone-else'], 'text')}`, async () => {
    const cli = await ehrAudit('verify');
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`${where}: column patientIds does not match the content`);
  });
  expect((await ehrAudit('verify')).code).toBe(0);
});
