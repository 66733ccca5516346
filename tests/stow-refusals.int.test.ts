import { createHash, randomUUID } from 'node:crypto';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { makeSeries, patchBytes, withElements } from './helpers/dicom.ts';
import {
  type Booked,
  bookPatientAndOrder,
  fhirPost,
  multipartBody,
  orthanc,
  orthancIdOf,
  orthancJson,
  STOW_TYPE,
  seq,
  val,
} from './helpers/stow.ts';

/**
 * STOW-RS refuses, before anything reaches Orthanc, what the parsed header shows to be wrong: several values in an
 * identifying attribute, an empty or unknown transfer syntax, a StudyInstanceUID linked to another patient, a NUL,
 * invalid UTF-8 or an overlong value; name, birth date or sex contradicting the EHR is held (default) or refused.
 * Each refusal changes nothing in the EHR or Orthanc.
 */

const B = 'stow-refusal-boundary';
let app: FastifyInstance;
let refusing: FastifyInstance;
let auth: { authorization: string };

beforeAll(async () => {
  app = await testApp();
  refusing = await testApp({ stowDemographicsMismatch: 'refuse' });
  auth = bearer(await adminToken(app));
});
afterAll(async () => {
  await app?.close();
  await refusing?.close();
});

const stow = (files: Buffer[], a = auth, server = app) =>
  request(server.server)
    .post('/dicom-web/studies')
    .set(a)
    .set('content-type', STOW_TYPE(B))
    .send(multipartBody(files, B));

/** Orthanc's id of an instance (SHA-1 of PatientID|StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID). */
function orthancInstanceId(patientId: string, study: string, series: string, sop: string): string {
  const h = createHash('sha1').update(`${patientId}|${study}|${series}|${sop}`).digest('hex');
  return [0, 8, 16, 24, 32].map((i) => h.slice(i, i + 8)).join('-');
}

const lastChange = async () => (await orthancJson<{ Last: number }>('/changes?last')).Last;

/** Whether Orthanc logged any change of this instance since `since` (it never got it, not even briefly). */
async function orthancSaw(id: string, since: number): Promise<boolean> {
  let at = since;
  for (;;) {
    const page = await orthancJson<{ Changes: { ID: string; Seq: number }[]; Done: boolean; Last: number }>(
      `/changes?since=${at}&limit=1000`,
    );
    if (page.Changes.some((c) => c.ID === id)) return true;
    if (page.Done || page.Changes.length === 0) return false;
    at = page.Last;
  }
}

/** What the EHR holds about a study: ImagingStudy, linked orders, queue items. */
async function ehrRows(studyUid: string) {
  const [studies, orders, queued] = await Promise.all([
    app.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM imaging_studies WHERE study_instance_uid = ${studyUid}`),
    app.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM orders WHERE study_instance_uid = ${studyUid}`),
    app.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM dicom_unmatched WHERE study_instance_uid = ${studyUid}`),
  ]);
  return { studies, orders, queued };
}

/** One instance for the booked order, with raw elements set (and optionally its transfer syntax). */
function instanceFor(b: Booked, elements: Parameters<typeof withElements>[1] = {}, ts?: string) {
  const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
  return { ...s, file: withElements(s.files[0]!, elements, ts) };
}

/** Asserts a 409 refusal of one instance with `code` and a reason naming `name`, and that nothing changed. */
async function expectRefused(
  res: request.Response,
  code: number,
  name: RegExp,
  inst: { studyUid: string; seriesUid: string; sopUids: string[] },
  b: Booked,
  since: number,
  patientId = b.mrn,
) {
  expect(res.status, res.text).toBe(409);
  const failed = seq(res.body, '00081198');
  expect(failed.map((f) => val(f, '00081197'))).toEqual([code]);
  expect(`${val(failed[0], '00000902')} ${res.headers['warning']}`).toMatch(name);
  expect(await orthancIdOf(inst.sopUids[0]!, 'Instance')).toBeUndefined();
  const id = orthancInstanceId(patientId, inst.studyUid, inst.seriesUid, inst.sopUids[0]!);
  expect(await orthancSaw(id, since)).toBe(false);
  expect(await ehrRows(inst.studyUid)).toEqual({ studies: 0, orders: 0, queued: 0 });
  const order = await app.db.one(sql.unsafe`SELECT study_instance_uid FROM orders WHERE id = ${b.orderId}`);
  expect(order).toEqual({ study_instance_uid: null });
}

describe('identifying attributes with several values', () => {
  test.each([
    ['PatientID', '00100020', 'LO', (b: Booked) => [b.mrn, 'OTHER']],
    ['AccessionNumber', '00080050', 'SH', (b: Booked) => [b.accession, 'OTHER']],
    ['SeriesInstanceUID', '0020000E', 'UI', () => ['1.2.3.4', '1.2.3.5']],
  ])('%s with two values: 0xA900 naming it, nothing stored', async (name, tag, vr, values) => {
    const b = await bookPatientAndOrder(app, auth);
    const inst = instanceFor(b);
    const since = await lastChange();
    const file = withElements(inst.file, { [tag]: { vr, Value: values(b) } });
    await expectRefused(await stow([file]), 0xa900, new RegExp(`${name} \\(.*\\) has 2 values`), inst, b, since);
  });
});

describe('transfer syntax', () => {
  test.each([
    ['empty', ''],
    ['unknown', '1.2.3.4.5.6'],
  ])('%s: 0xC122 (Referenced Transfer Syntax not supported), nothing stored', async (_name, ts) => {
    const b = await bookPatientAndOrder(app, auth);
    const inst = instanceFor(b, {}, ts);
    const since = await lastChange();
    await expectRefused(await stow([inst.file]), 0xc122, /transfer syntax|TransferSyntaxUID/i, inst, b, since);
  });
});

describe('string values that PostgreSQL cannot hold or index', () => {
  test('a NUL inside AccessionNumber: 0xA900 naming it, not a 500', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const inst = instanceFor(b, { '00080050': { vr: 'SH', Value: [`${b.accession.slice(0, 4)}\u0000X`] } });
    const since = await lastChange();
    await expectRefused(
      await stow([inst.file]),
      0xa900,
      /AccessionNumber \(0008,0050\) contains a NUL/,
      inst,
      b,
      since,
    );
  });

  test('invalid UTF-8 in PatientName under ISO_IR 192: 0xA900 naming it (not turned into U+FFFD)', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const inst = instanceFor(b, {
      '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'QQBADQQ^Jo' }] },
    });
    const file = patchBytes(inst.file, 'QQBADQQ', [0x53, 0xc3, 0x28, 0x6d, 0xff, 0x74, 0x68]);
    const since = await lastChange();
    await expectRefused(await stow([file]), 0xa900, /PatientName \(0010,0010\) is not valid UTF-8/, inst, b, since);
  });

  test('a 900 KB PatientName: refused naming the element', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const inst = instanceFor(b, { '00100010': { vr: 'PN', Value: [{ Alphabetic: 'A'.repeat(900 * 1024) }] } });
    const since = await lastChange();
    await expectRefused(await stow([inst.file]), 0xa900, /PatientName \(0010,0010\) is longer than/, inst, b, since);
  });
});

describe('a StudyInstanceUID already linked to another patient', () => {
  test('is refused with 0xA900 before Orthanc, also for a caller who cannot see that patient', async () => {
    const a = await bookPatientAndOrder(app, auth);
    const other = await bookPatientAndOrder(app, auth);
    const theirs = makeSeries({ patientId: other.mrn, accession: other.accession, count: 2 });
    expect((await stow(theirs.files)).status).toBe(200);
    const theirStudy = await orthancIdOf(theirs.studyUid, 'Study');
    const countOf = async () =>
      (await orthancJson<{ CountInstances: number }>(`/studies/${theirStudy}/statistics`)).CountInstances;
    const before = await countOf();
    const username = `stow-foreign-${randomUUID().slice(0, 8)}`;
    const user = { username, roles: ['doctor' as const] };
    await tokenFor(app, { user, scope: 'user/*.cruds' });
    await grantPatient(app, username, a.patientId);
    const doctor = bearer(await tokenFor(app, { user, scope: 'user/*.cruds' }));
    const mine = makeSeries({ patientId: a.mrn, accession: a.accession, studyUid: theirs.studyUid, count: 1 });
    const since = await lastChange();
    const res = await stow(mine.files, doctor);
    expect(res.status, res.text).toBe(409);
    const failed = seq(res.body, '00081198');
    expect(failed.map((f) => val(f, '00081197'))).toEqual([0xa900]);
    expect(val(failed[0], '00000902')).toBe('the study is already recorded for another patient');
    const id = orthancInstanceId(a.mrn, mine.studyUid, mine.seriesUid, mine.sopUids[0]!);
    expect(await orthancSaw(id, since)).toBe(false);
    expect(await countOf()).toBe(before);
    expect(await ehrRows(theirs.studyUid)).toEqual({ studies: 1, orders: 1, queued: 0 });
    const order = await app.db.one(sql.unsafe`SELECT study_instance_uid FROM orders WHERE id = ${a.orderId}`);
    expect(order).toEqual({ study_instance_uid: null });
  });
});

describe('demographics that contradict the EHR', () => {
  /** Jane Smith, F, born 1970-01-01, with an active order. */
  async function bookJane(server: FastifyInstance): Promise<Booked> {
    const p = await fhirPost<Patient>(server, auth, {
      resourceType: 'Patient',
      name: [{ family: 'Smith', given: ['Jane'] }],
      gender: 'female',
      birthDate: '1970-01-01',
    });
    const o = await fhirPost<ServiceRequest>(server, auth, {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }] },
      subject: { reference: `Patient/${p.id}` },
    });
    return { patientId: p.id!, mrn: p.identifier![0]!.value!, orderId: o.id!, accession: o.identifier![0]!.value! };
  }
  const john = {
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] },
    '00100030': { vr: 'DA', Value: ['19010101'] },
    '00100040': { vr: 'CS', Value: ['M'] },
  };

  test('by default: stored, not linked, held for review with the reason in words (0xB100)', async () => {
    const jane = await bookJane(app);
    const inst = instanceFor(jane, john);
    const res = await stow([inst.file]);
    expect(res.status, res.text).toBe(202);
    const stored = seq(res.body, '00081199');
    expect(stored.map((s) => val(s, '00081196'))).toEqual([0xb100]);
    expect(val(stored[0], '00000902')).toBe('stored, not linked: held for review');
    expect(String(res.headers['warning'])).toMatch(/PatientSex M differs from the EHR gender female/);
    expect(await ehrRows(inst.studyUid)).toEqual({ studies: 0, orders: 0, queued: 1 });
    const item = await app.db.one(sql.unsafe`
      SELECT reason, detail, source FROM dicom_unmatched WHERE study_instance_uid = ${inst.studyUid}`);
    expect(item).toMatchObject({ reason: 'patient-order-mismatch', source: 'stow' });
    const detail = String((item as { detail: string }).detail);
    expect(detail).toMatch(/PatientName "Doe\^John" differs from the EHR name "Smith Jane"/);
    expect(detail).toMatch(/PatientBirthDate 19010101 differs from the EHR birth date 1970-01-01/);
    expect(detail).toMatch(/PatientSex M differs from the EHR gender female/);
    const order = await app.db.one(sql.unsafe`SELECT study_instance_uid FROM orders WHERE id = ${jane.orderId}`);
    expect(order).toEqual({ study_instance_uid: null });
  });

  test('EHR_STOW_DEMOGRAPHICS_MISMATCH=refuse: 0xA900 with the reason in words, nothing stored', async () => {
    const jane = await bookJane(refusing);
    const inst = instanceFor(jane, john);
    const since = await lastChange();
    const res = await stow([inst.file], auth, refusing);
    await expectRefused(res, 0xa900, /PatientSex M differs from the EHR gender female/, inst, jane, since);
    expect(val(seq(res.body, '00081198')[0], '00000902')).toBe('patient name, birth date or sex contradicts the EHR');
  });

  test('into a study already linked: refused, not held (Orthanc would put it into the linked study)', async () => {
    const jane = await bookJane(app);
    const first = makeSeries({ patientId: jane.mrn, accession: jane.accession, count: 1 });
    expect((await stow(first.files)).status).toBe(200);
    const study = await orthancIdOf(first.studyUid, 'Study');
    const more = makeSeries({ patientId: jane.mrn, accession: jane.accession, studyUid: first.studyUid, count: 1 });
    const file = withElements(more.files[0]!, john);
    const since = await lastChange();
    const res = await stow([file]);
    expect(res.status, res.text).toBe(409);
    expect(seq(res.body, '00081198').map((f) => val(f, '00081197'))).toEqual([0xa900]);
    expect(await orthancSaw(orthancInstanceId(jane.mrn, first.studyUid, more.seriesUid, more.sopUids[0]!), since)).toBe(
      false,
    );
    const stats = await orthancJson<{ CountInstances: number }>(`/studies/${study}/statistics`);
    expect(stats.CountInstances).toBe(1);
    expect(await ehrRows(first.studyUid)).toEqual({ studies: 1, orders: 1, queued: 0 });
  });

  test('the same demographics in other letter case, or missing ones, match and link', async () => {
    const jane = await bookJane(app);
    const inst = instanceFor(jane, {
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'SMITH^JANE^^^' }] },
      '00100030': { vr: 'DA', Value: ['19700101'] },
      '00100040': { vr: 'CS', Value: [''] },
    });
    const res = await stow([inst.file]);
    expect(res.status, res.text).toBe(200);
    expect(await ehrRows(inst.studyUid)).toEqual({ studies: 1, orders: 1, queued: 0 });
  });
});

test('Orthanc helper sanity: the computed instance id is Orthanc own', async () => {
  const b = await bookPatientAndOrder(app, auth);
  const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
  expect((await stow(s.files)).status).toBe(200);
  const id = orthancInstanceId(b.mrn, s.studyUid, s.seriesUid, s.sopUids[0]!);
  expect((await orthanc(`/instances/${id}`)).status).toBe(200);
});
