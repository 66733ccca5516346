import { spawnSync } from 'node:child_process';
import type { Patient } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { bearer } from './helpers/auth.ts';
import {
  type Booked,
  book,
  cStore,
  ehrState,
  eventually,
  FAST_FEED,
  makeStudy,
  orthanc,
  orthancJson,
  orthancStudiesOf,
  resetFeedCursor,
  type TestStudy,
} from './helpers/change-feed.ts';
import { fhirServer, tokenAt } from './helpers/fhir.ts';
import { fhirPost } from './helpers/stow.ts';
import { relinkInOrthanc } from '../src/change-feed/relink.ts';

/**
 * C-STORE ingest against the real stack: storescu → Orthanc's DICOM port → /changes → the facade's consumer.
 * All studies are sent up front, so that Orthanc's StableAge (5 s) is waited for once.
 */

interface Item {
  id: string;
  studyInstanceUid: string;
  status: string;
  reason: string;
  source: string;
  orthancStudyId: string;
  rejectReason: string | null;
  linkedOrthancStudyId: string | null;
}

let app: FastifyInstance;
let admin: { authorization: string };
let radiologist: { authorization: string };
let doctor: { authorization: string };
let matched: Booked;
let forUnknownMrn: Booked;
let forWrongAccession: Booked;
let jane: Booked;
let multiValued: Booked;
let studies: Record<
  'matched' | 'unknownMrn' | 'wrongAccession' | 'toReject' | 'forCli' | 'notJane' | 'twoPatientIds' | 'halfA' | 'halfB',
  TestStudy
>;
let forHalfA: Booked;

async function queue(auth = admin, query = ''): Promise<Item[]> {
  const res = await app.inject({ method: 'GET', url: `/api/v1/dicom/unmatched${query}`, headers: auth });
  expect(res.statusCode).toBe(200);
  return (res.json() as { items: Item[] }).items;
}

const itemOf = async (uid: string) => (await queue()).find((i) => i.studyInstanceUid === uid);

beforeAll(async () => {
  await resetFeedCursor();
  const server = await fhirServer(FAST_FEED);
  app = server.app;
  admin = server.auth;
  const config = { ...FAST_FEED } as never;
  radiologist = bearer(await tokenAt(app, config, 'cf-radiologist', ['radiologist'], 'user/*.rs'));
  doctor = bearer(await tokenAt(app, config, 'cf-doctor', ['doctor'], 'user/*.rs'));
  matched = await book(app, admin);
  forUnknownMrn = await book(app, admin);
  forWrongAccession = await book(app, admin);
  const smith = await fhirPost<Patient>(app, admin, {
    resourceType: 'Patient',
    name: [{ family: 'Smith', given: ['Jane'] }],
    gender: 'female',
    birthDate: '1970-01-01',
  });
  jane = await book(app, admin, { patientId: smith.id!, mrn: smith.identifier![0]!.value! });
  multiValued = await book(app, admin);
  forHalfA = await book(app, admin);
  studies = {
    matched: await makeStudy(matched.mrn, matched.accession, 2),
    unknownMrn: await makeStudy(`NOBODY-${Date.now()}`, forUnknownMrn.accession, 2),
    wrongAccession: await makeStudy(forWrongAccession.mrn, `NO-SUCH-ACC-${Date.now()}`, 1),
    toReject: await makeStudy(`STRANGER-${Date.now()}`, 'UNKNOWN', 1),
    forCli: await makeStudy(`WALK-IN-${Date.now()}`, 'UNKNOWN', 1),
    notJane: await makeStudy(jane.mrn, jane.accession, 1, {
      patientName: 'Doe^John',
      patientSex: 'M',
      patientBirthDate: '19010101',
    }),
    twoPatientIds: await makeStudy(`${multiValued.mrn}\\OTHER`, multiValued.accession, 1),
    halfA: await makeStudy(`HALF-A-${Date.now()}`, 'UNKNOWN-A', 2),
    halfB: await makeStudy(`HALF-B-${Date.now()}`, 'UNKNOWN-B', 1),
  };
  // Wait until the consumer leads (it started at Orthanc's latest change), then send everything.
  await eventually('the consumer to lead', async () => app.changeFeed.leading());
  await cStore(Object.values(studies).flatMap((s) => s.files));
});

afterAll(async () => {
  await app?.close();
});

describe('a C-STORE study that matches', () => {
  test('becomes an ImagingStudy linked to its patient and order, logged with source dimse, audited as the system', async () => {
    const state = await eventually('the matched study to be linked', async () => {
      const s = await ehrState(app, studies.matched.studyUid);
      return s.study && s.orders.length === 1 ? s : undefined;
    });
    expect(state.study?.content.subject?.reference).toBe(`Patient/${matched.patientId}`);
    expect(state.study?.content.basedOn?.map((b) => b.reference)).toContain(`ServiceRequest/${matched.orderId}`);
    expect(state.orders[0]?.id).toBe(matched.orderId);
    expect(state.logs).toEqual([{ source: 'dimse', order_id: matched.orderId, patient_id: matched.patientId }]);
    const order = await app.inject({ method: 'GET', url: `/fhir/ServiceRequest/${matched.orderId}`, headers: admin });
    expect(order.json().status).toBe('completed');
    const audits = (await app.db.any(sql.unsafe`
      SELECT content FROM audit_event WHERE content::text LIKE ${`%${studies.matched.studyUid}%`}
        AND agent_who && ARRAY['system:change-feed']`)) as readonly { content: { action: string } }[];
    expect(audits.map((a) => a.content.action)).toEqual(['C']);
  });
});

describe('C-STORE studies that fail the checks STOW-RS makes', () => {
  const detailOf = async (uid: string) =>
    (await app.db.oneFirst(sql.unsafe`
      SELECT detail FROM dicom_unmatched WHERE study_instance_uid = ${uid}`)) as string;

  test('demographics contradicting the EHR: queued with the reason in words, not linked', async () => {
    const item = await eventually('the study in the queue', () => itemOf(studies.notJane.studyUid));
    expect(item).toMatchObject({ status: 'pending', reason: 'patient-order-mismatch', source: 'dimse' });
    const detail = await detailOf(studies.notJane.studyUid);
    expect(detail).toMatch(/PatientName "Doe\^John" differs from the EHR name "Smith Jane"/);
    expect(detail).toMatch(/PatientSex M differs from the EHR gender female/);
    expect(detail).toMatch(/PatientBirthDate 19010101 differs/);
    const state = await ehrState(app, studies.notJane.studyUid);
    expect([state.study, state.orders]).toEqual([null, []]);
  });

  test('a PatientID with two values: queued, naming the element, not linked', async () => {
    const item = await eventually('the study in the queue', () => itemOf(studies.twoPatientIds.studyUid));
    expect(item).toMatchObject({ status: 'pending', reason: 'missing-identifiers', source: 'dimse' });
    expect(await detailOf(studies.twoPatientIds.studyUid)).toMatch(/PatientID \(0010,0020\) has several values/);
    const state = await ehrState(app, studies.twoPatientIds.studyUid);
    expect([state.study, state.orders]).toEqual([null, []]);
  });

  test('a user who reviewed the held study can still link it to the patient', async () => {
    const item = await eventually('the study in the queue', () => itemOf(studies.notJane.studyUid));
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/link`,
      headers: { ...radiologist, 'content-type': 'application/json' },
      payload: { patient: `Patient/${jane.patientId}`, order: `ServiceRequest/${jane.orderId}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect((await ehrState(app, studies.notJane.studyUid)).orders.map((o) => o.id)).toEqual([jane.orderId]);
  });
});

describe('unmatched studies', () => {
  test('appear in the queue with their reason and source dimse', async () => {
    const unknown = await eventually('the unknown-MRN study in the queue', () => itemOf(studies.unknownMrn.studyUid));
    expect(unknown).toMatchObject({ status: 'pending', reason: 'unknown-mrn', source: 'dimse' });
    const wrongAcc = await eventually('the wrong-accession study', () => itemOf(studies.wrongAccession.studyUid));
    expect(wrongAcc).toMatchObject({ status: 'pending', reason: 'unknown-accession' });
    expect((await ehrState(app, studies.unknownMrn.studyUid)).study).toBeNull();
  });

  test('the queue is for admins and radiologists only', async () => {
    expect((await queue(radiologist)).length).toBeGreaterThan(0);
    const denied = await app.inject({ method: 'GET', url: '/api/v1/dicom/unmatched', headers: doctor });
    expect(denied.statusCode).toBe(403);
    const anonymous = await app.inject({ method: 'GET', url: '/api/v1/dicom/unmatched' });
    expect(anonymous.statusCode).toBe(401);
    const item = await eventually('an item', () => itemOf(studies.toReject.studyUid));
    const link = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/reject`,
      headers: { ...doctor, 'content-type': 'application/json' },
      payload: { reason: 'not mine' },
    });
    expect(link.statusCode).toBe(403);
    expect((await itemOf(studies.toReject.studyUid))?.status).toBe('pending');
  });

  test('linking to a wrong target is refused and changes nothing', async () => {
    const item = await eventually('the unknown-MRN item', () => itemOf(studies.unknownMrn.studyUid));
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/link`,
      headers: { ...radiologist, 'content-type': 'application/json' },
      payload: { patient: `Patient/${matched.patientId}`, order: `ServiceRequest/${forUnknownMrn.orderId}` },
    });
    expect(res.statusCode).toBe(422);
    expect(res.json().error).toMatch(/is not an order of/);
    expect(await itemOf(studies.unknownMrn.studyUid)).toMatchObject({ status: 'pending' });
    expect(await orthancStudiesOf(studies.unknownMrn.studyUid)).toEqual([item.orthancStudyId]);
  });

  test.each([
    ['a new PatientID and AccessionNumber', 'unknownMrn', () => forUnknownMrn],
    ['only a new AccessionNumber (same Orthanc ids: via a temporary copy)', 'wrongAccession', () => forWrongAccession],
  ] as const)('linking with %s fixes the tags in Orthanc and links the order', async (_n, key, target) => {
    const study = studies[key];
    const booked = target();
    const item = await eventually('the item', () => itemOf(study.studyUid));
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/link`,
      headers: { ...radiologist, 'content-type': 'application/json' },
      payload: { patient: `Patient/${booked.patientId}`, order: `ServiceRequest/${booked.orderId}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ status: 'linked' });

    // Orthanc: one copy of the study, with the corrected tags and the original UIDs.
    const ids = await orthancStudiesOf(study.studyUid);
    expect(ids).toHaveLength(1);
    const s = await orthancJson<{
      PatientMainDicomTags: { PatientID: string };
      MainDicomTags: { AccessionNumber: string };
    }>(`/studies/${ids[0]}`);
    expect(s.PatientMainDicomTags.PatientID).toBe(booked.mrn);
    expect(s.MainDicomTags.AccessionNumber).toBe(booked.accession);
    const instances = await orthancJson<{ MainDicomTags: { SOPInstanceUID: string } }[]>(
      `/studies/${ids[0]}/instances`,
    );
    expect(instances.map((i) => i.MainDicomTags.SOPInstanceUID).sort()).toEqual([...study.sopUids].sort());
    const tags = await orthancJson<Record<string, string>>(
      `/instances/${(await orthancJson<{ ID: string }[]>(`/studies/${ids[0]}/instances`))[0]!.ID}/simplified-tags`,
    );
    expect(tags['PatientID']).toBe(booked.mrn);
    expect(tags['AccessionNumber']).toBe(booked.accession);

    // EHR: linked to the chosen order and patient.
    const state = await ehrState(app, study.studyUid);
    expect(state.orders.map((o) => o.id)).toEqual([booked.orderId]);
    expect(state.study?.content.subject?.reference).toBe(`Patient/${booked.patientId}`);
    expect(state.study?.orthanc_study_id).toBe(ids[0]);
    expect(res.json().linkedOrthancStudyId).toBe(ids[0]);
  });

  test('rejecting leaves the study in Orthanc and the item marked', async () => {
    const item = await eventually('the item to reject', () => itemOf(studies.toReject.studyUid));
    const empty = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/reject`,
      headers: { ...admin, 'content-type': 'application/json' },
      payload: {},
    });
    expect(empty.statusCode).toBe(400);
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/reject`,
      headers: { ...admin, 'content-type': 'application/json' },
      payload: { reason: 'test images from the service engineer' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'rejected', rejectReason: 'test images from the service engineer' });
    expect(await orthancStudiesOf(studies.toReject.studyUid)).toEqual([item.orthancStudyId]);
    const again = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/reject`,
      headers: { ...admin, 'content-type': 'application/json' },
      payload: { reason: 'twice' },
    });
    expect(again.statusCode).toBe(409);
  });
});

describe('bin/ehr unmatched', () => {
  const stack = inject('stack');
  const ehr = (...args: string[]) =>
    spawnSync(process.execPath, ['src/cli/main.ts', 'unmatched', ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        PATH: process.env['PATH'],
        EHR_ENV_FILE: '/dev/null',
        EHR_STACK_DIR: '/nonexistent',
        EHR_DATABASE_URL: stack.databaseUrl,
        EHR_ORTHANC_URL: stack.orthancUrl,
        EHR_ORTHANC_USERNAME: stack.orthancUsername,
        EHR_ORTHANC_PASSWORD: stack.orthancPassword,
      },
    });

  test('list shows the pending item; reject needs an admin or radiologist and marks it', async () => {
    const item = await eventually('the CLI item', () => itemOf(studies.forCli.studyUid));
    const list = ehr('list', '--json');
    expect(list.status, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Item[]).map((i) => i.id)).toContain(item.id);
    const byDoctor = ehr('reject', item.id, '--reason', 'walk-in test', '--user', 'cf-doctor');
    expect(byDoctor.status).toBe(64);
    expect(byDoctor.stderr).toMatch(/not an active admin or radiologist/);
    expect((await itemOf(studies.forCli.studyUid))?.status).toBe('pending');
    const ok = ehr('reject', item.id, '--reason', 'walk-in test', '--user', 'cf-radiologist');
    expect(ok.status, ok.stderr).toBe(0);
    expect(await itemOf(studies.forCli.studyUid)).toMatchObject({ status: 'rejected', rejectReason: 'walk-in test' });
  });
});

describe('a re-link that failed half-way', () => {
  const stack = inject('stack');
  const ehr = (...args: string[]) =>
    spawnSync(process.execPath, ['src/cli/main.ts', 'unmatched', ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        PATH: process.env['PATH'],
        EHR_ENV_FILE: '/dev/null',
        EHR_STACK_DIR: '/nonexistent',
        EHR_DATABASE_URL: stack.databaseUrl,
        EHR_ORTHANC_URL: stack.orthancUrl,
        EHR_ORTHANC_USERNAME: stack.orthancUsername,
        EHR_ORTHANC_PASSWORD: stack.orthancPassword,
      },
    });

  /** PatientID and AccessionNumber of the one Orthanc copy of a study. */
  async function orthancTags(uid: string) {
    const ids = await orthancStudiesOf(uid);
    const s = await orthancJson<{
      PatientMainDicomTags: { PatientID: string };
      MainDicomTags: { AccessionNumber: string };
    }>(`/studies/${ids[0]}`);
    return { ids, patientId: s.PatientMainDicomTags.PatientID, accession: s.MainDicomTags.AccessionNumber };
  }

  /**
   * The state an interrupted re-link leaves: Orthanc's copy already rewritten to the target's MRN and accession, the
   * item `relinking` with that target and the error (here the target is an order that is linked elsewhere, as when
   * `unmatched link` was given one before targets were checked first).
   */
  async function halfDone(item: Item, target: Booked): Promise<void> {
    await relinkInOrthanc(
      app.orthanc,
      {
        itemId: item.id,
        studyInstanceUid: item.studyInstanceUid,
        orthancStudyId: item.orthancStudyId,
        phase: 'to-final',
        viaTemporary: false,
        mrn: target.mrn,
        accessionNumber: target.accession,
      },
      async () => undefined,
    );
    await app.db.query(sql.unsafe`
      UPDATE dicom_unmatched SET status = 'relinking', relink_phase = 'to-final', target_patient_id = ${target.patientId},
        target_order_id = ${target.orderId}, target_mrn = ${target.mrn}, target_accession = ${target.accession},
        last_error = 'corrected study still does not match: order is linked to another study'
      WHERE id = ${item.id}`);
  }

  test('linking to an order that is already linked is refused before Orthanc is touched', async () => {
    const item = await eventually('the item', () => itemOf(studies.halfA.studyUid));
    await eventually(
      'the matched order to be linked',
      async () => (await ehrState(app, studies.matched.studyUid)).orders.length > 0,
    );
    const before = await orthancTags(studies.halfA.studyUid);
    const res = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/link`,
      headers: { ...radiologist, 'content-type': 'application/json' },
      payload: { patient: `Patient/${matched.patientId}`, order: `ServiceRequest/${matched.orderId}` },
    });
    expect(res.statusCode, res.body).toBe(422);
    expect(res.json().error).toMatch(/already linked to study/);
    expect(await itemOf(studies.halfA.studyUid)).toMatchObject({ status: 'pending' });
    expect(await orthancTags(studies.halfA.studyUid)).toEqual(before);
  });

  test('a stuck item is listed alike in text and JSON, can be rolled back, and then linked elsewhere', async () => {
    const item = await eventually('the item', () => itemOf(studies.halfA.studyUid));
    const original = await orthancTags(studies.halfA.studyUid);
    await halfDone(item, matched);
    expect((await orthancTags(studies.halfA.studyUid)).patientId).toBe(matched.mrn);

    const json = ehr('list', '--json');
    expect(json.status, json.stderr).toBe(0);
    const listed = (JSON.parse(json.stdout) as Item[]).find((i) => i.id === item.id);
    expect(listed).toMatchObject({ status: 'relinking' });
    const text = ehr('list');
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain(item.id);
    expect(text.stdout).toMatch(/last error: corrected study still does not match/);

    const back = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/rollback`,
      headers: radiologist,
    });
    expect(back.statusCode, back.body).toBe(200);
    expect(back.json()).toMatchObject({ status: 'pending', target: null, orthancStudyId: item.orthancStudyId });
    expect(await orthancTags(studies.halfA.studyUid)).toEqual(original);

    const linked = await app.inject({
      method: 'POST',
      url: `/api/v1/dicom/unmatched/${item.id}/link`,
      headers: { ...radiologist, 'content-type': 'application/json' },
      payload: { patient: `Patient/${forHalfA.patientId}`, order: `ServiceRequest/${forHalfA.orderId}` },
    });
    expect(linked.statusCode, linked.body).toBe(200);
    expect(linked.json()).toMatchObject({ status: 'linked' });
    const after = await orthancTags(studies.halfA.studyUid);
    expect(after).toMatchObject({ patientId: forHalfA.mrn, accession: forHalfA.accession });
    expect(after.ids).toHaveLength(1);
    expect((await ehrState(app, studies.halfA.studyUid)).orders.map((o) => o.id)).toEqual([forHalfA.orderId]);
  });

  test('rejecting a stuck item restores the study in Orthanc as it was queued', async () => {
    const item = await eventually('the item', () => itemOf(studies.halfB.studyUid));
    const original = await orthancTags(studies.halfB.studyUid);
    await halfDone(item, matched);
    const res = ehr(
      'reject',
      item.id,
      '--reason',
      'wrong patient, sent back to the modality',
      '--user',
      'cf-radiologist',
    );
    expect(res.status, res.stderr).toBe(0);
    const rows = await queue(admin, '?status=rejected');
    expect(rows.find((i) => i.id === item.id)).toMatchObject({
      status: 'rejected',
      orthancStudyId: item.orthancStudyId,
    });
    expect(await orthancTags(studies.halfB.studyUid)).toEqual(original);
  });
});

describe('after the feed has caught up', () => {
  test('every study was indexed once: the re-linked copies did not come back as new items or links', async () => {
    // The corrected copies become stable ~5 s after the re-link; then the feed must read up to Orthanc's last change.
    await new Promise((r) => setTimeout(r, 6000));
    await eventually('the cursor to reach the end of the change log', async () => {
      const last = (await orthancJson<{ Last: number }>('/changes?last')).Last;
      const row = (await app.db.maybeOne(sql.unsafe`SELECT last_seq FROM change_feed_cursor`)) as {
        last_seq: string;
      } | null;
      return row !== null && Number(row.last_seq) >= last;
    });
    for (const s of [studies.matched, studies.unknownMrn, studies.wrongAccession]) {
      const state = await ehrState(app, s.studyUid);
      expect(state.logs, s.studyUid).toHaveLength(1);
      expect(state.orders).toHaveLength(1);
      const items = (await queue()).filter((i) => i.studyInstanceUid === s.studyUid);
      expect(items.filter((i) => i.status !== 'linked')).toEqual([]);
    }
  });

  test('deleting a linked study in Orthanc marks its ImagingStudy entered-in-error and unlinks the order', async () => {
    const [id] = await orthancStudiesOf(studies.matched.studyUid);
    expect((await orthanc(`/studies/${id}`, { method: 'DELETE' })).status).toBe(200);
    const state = await eventually('the deletion to be noticed', async () => {
      const s = await ehrState(app, studies.matched.studyUid);
      return s.study?.content.status === 'entered-in-error' ? s : undefined;
    });
    expect(state.orders).toEqual([]);
    const order = (await app.db.one(sql.unsafe`
      SELECT study_instance_uid, orthanc_study_id FROM orders WHERE id = ${matched.orderId}`)) as Record<
      string,
      unknown
    >;
    expect(order).toEqual({ study_instance_uid: null, orthanc_study_id: null });
  });
});
