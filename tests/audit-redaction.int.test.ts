/**
 * What a patient app sees of the audit trail, and what auditors find, against the real stack:
 *
 * - A patient-context caller sees only its own compartment, redacted: an admin's multi-patient read shows patient A
 *   nothing of B (no id, MRN or study UID, not even inside the base64 query), marked with the REDACTED label.
 * - Its searches are filtered before counting: `entity=Patient/B` answers exactly what a never-existing id answers.
 * - Auditors find a denied attempt by the patient it targeted (`patient=B`), a denied WADO by either UID form, and
 *   still see every event unredacted; the stored events (and so the hash chain) are never changed by a read.
 */
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AuditBase } from '../src/audit/balp.ts';
import { fhirRestEvent } from '../src/audit/balp.ts';
import { dicomRetrieveEvent } from '../src/audit/balp-dicom.ts';
import { linkHash } from '../src/audit/chain.ts';
import { appendAuditEvent, verifyChain } from '../src/audit/store.ts';
import { testApp } from './helpers/app.ts';
import { eventOf, patientsOf, queryOf } from './helpers/audit.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';

let app: FastifyInstance;
let data: Dataset;
const auth = {} as Record<'admin' | 'auditor' | 'patA' | 'patB', { authorization: string }>;
const tag = `red${Date.now().toString(36)}`;

const PATIENT_SCOPE = 'launch/patient patient/*.rs patient/AuditEvent.rs';
const REDACTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'REDACTED' };

beforeAll(async () => {
  app = await testApp();
  data = await seedDataset(app, tag);
  auth.admin = bearer(await adminToken(app));
  auth.auditor = bearer(
    await tokenFor(app, { user: { username: `auditor-${tag}`, roles: ['auditor'] }, scope: 'user/AuditEvent.rs' }),
  );
  for (const [key, p] of [
    ['patA', data.A],
    ['patB', data.B],
  ] as const) {
    auth[key] = bearer(
      await tokenFor(app, { user: { username: `${key}-${tag}`, roles: [] }, scope: PATIENT_SCOPE, patient: p.id }),
    );
  }
});
afterAll(async () => {
  await app?.close();
});

const requestIdOf = (res: { headers: Record<string, unknown> }) => String(res.headers['x-request-id']);
const eventsIn = (body: Bundle): AuditEvent[] => (body.entry ?? []).map((e) => e.resource as AuditEvent);

/** Everything a caller can read of a Bundle: its JSON and every base64 query decoded. */
function visibleText(body: Bundle): string {
  const queries = eventsIn(body).flatMap((e) =>
    (e.entity ?? []).flatMap((x) => (x.query ? [Buffer.from(x.query, 'base64').toString('utf8')] : [])),
  );
  return [JSON.stringify(body), ...queries].join('\n');
}

/** B's identifiers: its id, MRN and study UIDs. */
const secretsOfB = () => [data.B.id, data.B.mrn, ...data.B.studies.map((s) => s.uid)];

async function search(who: { authorization: string }, query: string): Promise<Bundle> {
  const res = await request(app.server).get(`/fhir/AuditEvent?${query}`).set(who);
  expect(res.status, res.text).toBe(200);
  return res.body as Bundle;
}

describe('a patient-context caller sees its own compartment, redacted', () => {
  const admin = {} as Record<'fhir' | 'qido', string>;

  beforeAll(async () => {
    const fhir = await request(app.server).get(`/fhir/Patient?_id=${data.A.id},${data.B.id}`).set(auth.admin);
    expect(fhir.status, fhir.text).toBe(200);
    admin.fhir = requestIdOf(fhir);
    const qido = await request(app.server)
      .get(`/dicom-web/studies?PatientID=${data.A.mrn},${data.B.mrn}`)
      .set(auth.admin);
    expect(qido.status, qido.text).toBe(200);
    admin.qido = requestIdOf(qido);
    // The FHIR event is about A and B (the QIDO's too, once its MRN list is split: checked below).
    expect(patientsOf(await eventOf(app, fhir))).toEqual([`Patient/${data.A.id}`, `Patient/${data.B.id}`].sort());
  });

  test("patient A's search shows the admin's reads with nothing of B, marked REDACTED", async () => {
    const body = await search(auth.patA, `patient=Patient/${data.A.id}&_count=100`);
    const events = eventsIn(body);
    const ids = new Set(
      events.map((e) => e.entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value),
    );
    expect(ids.has(admin.fhir) && ids.has(admin.qido), JSON.stringify([...ids])).toBe(true);
    const text = visibleText(body);
    for (const secret of secretsOfB()) expect(text).not.toContain(secret);
    for (const e of events) {
      const rid = e.entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value;
      if (rid === admin.fhir || rid === admin.qido) {
        expect(e.meta?.security).toContainEqual(expect.objectContaining(REDACTED));
        expect(patientsOf(e)).toEqual([`Patient/${data.A.id}`]);
      }
    }
  });

  test("patient A's read of one of those events by id is redacted the same way", async () => {
    const body = await search(auth.patA, `request-id=${admin.fhir}`);
    const id = eventsIn(body)[0]?.id as string;
    const res = await request(app.server).get(`/fhir/AuditEvent/${id}`).set(auth.patA);
    expect(res.status).toBe(200);
    const e = res.body as AuditEvent;
    expect(e.meta?.security).toContainEqual(expect.objectContaining(REDACTED));
    const text = [res.text, queryOf(e) ?? ''].join('\n');
    for (const secret of secretsOfB()) expect(text).not.toContain(secret);
  });

  test.each([
    ['entity', () => `Patient/${data.B.id}`, () => `Patient/never-${tag}`],
    ['entity', () => data.B.studies[0]?.uid as string, () => '1.2.3.999999.424242'],
    ['entity', () => `urn:oid:${data.B.studies[0]?.uid}`, () => 'urn:oid:1.2.3.999999.424242'],
    ['patient', () => data.B.id, () => `never-${tag}`],
    ['patient', () => `Patient/${data.B.id}`, () => `Patient/never-${tag}`],
  ])("patient A's %s=<B> answers exactly what a never-existing value answers", async (param, ofB, never) => {
    const forB = await search(auth.patA, `${param}=${encodeURIComponent(ofB())}&_count=100`);
    const forNever = await search(auth.patA, `${param}=${encodeURIComponent(never())}&_count=100`);
    expect(forB.total).toBe(0);
    expect(forB.total).toBe(forNever.total);
    expect(forB.entry ?? []).toEqual(forNever.entry ?? []);
  });

  test('the total counts only what the patient may see (paging reveals nothing more)', async () => {
    // Each of these searches is itself an event about A: both count up to the same instant.
    const until = `lt${new Date().toISOString()}`;
    const all = await search(auth.patA, `date=${until}&_count=100`);
    const page = await search(auth.patA, `date=${until}&_count=1`);
    expect(page.total).toBe(all.total);
    expect(all.total).toBe(eventsIn(all).length);
    for (const secret of secretsOfB()) expect(visibleText(all)).not.toContain(secret);
  });

  test('an auditor still sees the full events, unredacted; the stored events are unchanged', async () => {
    const body = await search(auth.auditor, `request-id=${admin.fhir}`);
    const [e] = eventsIn(body);
    expect(e?.meta?.security).toBeUndefined();
    expect(patientsOf(e as AuditEvent)).toContain(`Patient/${data.B.id}`);
    expect(queryOf(e as AuditEvent)).toBe(`Patient?_id=${data.A.id},${data.B.id}`);
    const [qido] = eventsIn(await search(auth.auditor, `request-id=${admin.qido}`));
    expect(patientsOf(qido as AuditEvent)).toEqual([`Patient/${data.A.id}`, `Patient/${data.B.id}`].sort());
    const row = (await app.db.one(
      sql.unsafe`SELECT content, prev_hash, hash FROM audit_event WHERE request_id = ${admin.qido}`,
    )) as { content: AuditEvent; prev_hash: string; hash: string };
    expect(row.content.meta?.security).toBeUndefined();
    expect(linkHash(row.prev_hash, row.content)).toBe(row.hash);
    expect((await verifyChain(app.db)).ok).toBe(true);
  });
});

describe('auditors find denied attempts by the patient they targeted', () => {
  const denied = {} as Record<'read' | 'wado' | 'search', string>;

  beforeAll(async () => {
    const read = await request(app.server).get(`/fhir/Patient/${data.B.id}`).set(auth.patA);
    expect([403, 404]).toContain(read.status);
    denied.read = requestIdOf(read);
    const wado = await request(app.server).get(`/dicom-web/studies/${data.B.studies[0]?.uid}/metadata`).set(auth.patA);
    expect([403, 404]).toContain(wado.status);
    denied.wado = requestIdOf(wado);
    // Narrowed to A's own compartment: an empty searchset (or a refusal), never B's orders.
    const sr = await request(app.server).get(`/fhir/ServiceRequest?patient=${data.B.id}`).set(auth.patA);
    expect([200, 403, 404]).toContain(sr.status);
    if (sr.status === 200) expect((sr.body as Bundle).entry ?? []).toEqual([]);
    denied.search = requestIdOf(sr);
    for (const rid of [denied.read, denied.wado]) {
      const [e] = eventsIn(await search(auth.auditor, `request-id=${rid}`));
      expect(e?.outcome).not.toBe('0');
    }
  });

  test.each(['read', 'wado', 'search'] as const)('the denied %s is found by patient=B', async (kind) => {
    for (const value of [data.B.id, `Patient/${data.B.id}`]) {
      const body = await search(auth.auditor, `patient=${value}&request-id=${denied[kind]}`);
      expect(body.total, `${kind} by patient=${value}`).toBe(1);
    }
  });

  test('the denied WADO is found by the bare study UID and by its urn:oid: form', async () => {
    const uid = data.B.studies[0]?.uid as string;
    for (const value of [uid, `urn:oid:${uid}`]) {
      const body = await search(auth.auditor, `entity=${encodeURIComponent(value)}&request-id=${denied.wado}`);
      expect(body.total, value).toBe(1);
    }
  });

  test('neither patient A (who tried) nor patient B (the target) sees these denied events', async () => {
    for (const rid of Object.values(denied)) {
      expect((await search(auth.patA, `request-id=${rid}`)).total).toBe(0);
      expect((await search(auth.patB, `request-id=${rid}`)).total).toBe(0);
    }
    for (const secret of secretsOfB()) expect(visibleText(await search(auth.patA, '_count=100'))).not.toContain(secret);
  });
});

describe('events stored before requested patients were recorded', () => {
  test('an auditor finds them by patient=B too: by the study they name, or by their query', async () => {
    const base = (requestId: string): AuditBase => ({
      recorded: new Date().toISOString(),
      requestId,
      network: '127.0.0.1',
      serverBaseUrl: 'http://localhost:8000',
      agent: undefined,
      outcome: '4',
      outcomeDesc: 'not found',
      denied: true,
    });
    // As the builders wrote them before: no requested-patient entity, so requested_patient_ids is empty.
    const legacy = {
      wado: `legacy-wado-${tag}`,
      search: `legacy-search-${tag}`,
      qido: `legacy-qido-${tag}`,
    };
    await appendAuditEvent(
      app.db,
      dicomRetrieveEvent(base(legacy.wado), { studies: [{ studyUid: data.B.studies[1]?.uid as string }] }),
    );
    await appendAuditEvent(
      app.db,
      fhirRestEvent(
        { ...base(legacy.search), outcome: '0', outcomeDesc: undefined, denied: false },
        { interaction: 'search-type', resourceType: 'ServiceRequest', query: `patient=Patient%2F${data.B.id}` },
      ),
    );
    await appendAuditEvent(
      app.db,
      fhirRestEvent(base(legacy.qido), {
        interaction: 'search-type',
        resourceType: 'ImagingStudy',
        query: `identifier=${data.B.mrn}`,
      }),
    );
    const boundary = await app.db.oneFirst(sql.unsafe`SELECT legacy_through_seq FROM audit_requested_from`);
    await app.db.query(
      sql.unsafe`UPDATE audit_requested_from SET legacy_through_seq = (SELECT max(seq) FROM audit_event)`,
    );
    try {
      for (const rid of Object.values(legacy)) {
        const body = await search(auth.auditor, `patient=${data.B.id}&request-id=${rid}`);
        expect(body.total, rid).toBe(1);
        const other = await search(auth.auditor, `patient=${data.C.id}&request-id=${rid}`);
        expect(other.total, rid).toBe(0);
        expect((await search(auth.patA, `request-id=${rid}`)).total).toBe(0);
      }
    } finally {
      await app.db.query(sql.unsafe`UPDATE audit_requested_from SET legacy_through_seq = ${Number(boundary)}`);
    }
    expect((await verifyChain(app.db)).ok).toBe(true);
  });
});
