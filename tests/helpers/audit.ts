/**
 * Reading stored AuditEvents in integration tests: straight from the audit_event table (not from logs), by the
 * request id each response carries in `x-request-id`; and running the real `bin/ehr audit` against the test database.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { expect } from 'vitest';
import { type AuditItem, renderItem } from '../../src/audit/compact.ts';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { auditEventIssues } from '../../src/audit/validate.ts';
import { testConfig } from './app.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Every stored event of one request (the plugin promises exactly one), each checked with validateResource; a compact
 * row's event is rendered from its record as every reader does (src/audit/compact.ts).
 */
export async function eventsOf(app: FastifyInstance, requestId: string): Promise<AuditEvent[]> {
  const rows = (await app.db.any(
    sql.unsafe`SELECT content FROM audit_event WHERE request_id = ${requestId} ORDER BY seq`,
  )) as readonly { content: AuditItem }[];
  const events = rows.map((r) => renderItem(r.content));
  for (const e of events) expect(auditEventIssues(e), JSON.stringify(e)).toEqual([]);
  return events;
}

/** The one event of a response (asserts there is exactly one). */
export async function eventOf(app: FastifyInstance, res: { headers: Record<string, unknown> }): Promise<AuditEvent> {
  const id = String(res.headers['x-request-id']);
  const events = await eventsOf(app, id);
  expect(events, `events of request ${id}`).toHaveLength(1);
  return events[0] as AuditEvent;
}

export const patientsOf = (e: AuditEvent): string[] =>
  (e.entity ?? []).filter((x) => x.role?.code === '1').map((x) => x.what?.reference ?? '');
export const userOf = (e: AuditEvent) => e.agent?.find((a) => a.requestor);
export const clientOf = (e: AuditEvent) =>
  e.agent?.find(
    (a) => a.who?.identifier?.system === 'urn:ietf:params:oauth:client-id' || a.type?.coding?.[0]?.code === '110150',
  );
export const subtypeOf = (e: AuditEvent) => e.subtype?.map((s) => s.code);
export const studyUidsOf = (e: AuditEvent) =>
  (e.entity ?? [])
    .filter((x) => x.what?.identifier?.type?.coding?.[0]?.code === '110180')
    .map((x) => x.what?.identifier?.value);
export const queryOf = (e: AuditEvent) => {
  const q = e.entity?.find((x) => x.role?.code === '24')?.query;
  return q ? Buffer.from(q, 'base64').toString('utf8') : undefined;
};

/**
 * Runs `fn` while the audit store refuses (a BEFORE INSERT trigger raising) every event whose request id starts with
 * `prefix`, as a failing database would; the trigger is removed afterwards whatever happens. `name` must be unique
 * per test file (it names the trigger and its function).
 */
export async function withAuditRefusing<T>(
  app: FastifyInstance,
  name: string,
  prefix: string,
  fn: () => Promise<T>,
): Promise<T> {
  const ident = sql.identifier([name]);
  await app.db.query(sql.unsafe`
    CREATE FUNCTION ${ident}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit store refused (test)'; END $$`);
  await app.db.query(sql.unsafe`
    CREATE TRIGGER ${ident} BEFORE INSERT ON audit_event FOR EACH ROW
      WHEN (NEW.request_id LIKE ${sql.literalValue(`${prefix}%`)}) EXECUTE FUNCTION ${ident}()`);
  try {
    return await fn();
  } finally {
    await app.db.query(sql.unsafe`DROP TRIGGER ${ident} ON audit_event`);
    await app.db.query(sql.unsafe`DROP FUNCTION ${ident}()`);
  }
}

/** Runs the real `bin/ehr audit ...` against the test database. */
export async function ehrAudit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = testConfig();
  const env = {
    ...process.env,
    EHR_ENV_FILE: '/dev/null',
    EHR_STACK_DIR: '/nonexistent',
    EHR_DATABASE_URL: c.databaseUrl,
    EHR_ORTHANC_URL: c.orthancUrl,
    EHR_ORTHANC_PASSWORD: c.orthancPassword,
  };
  try {
    const r = await run(`${ROOT}bin/ehr`, ['audit', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
