import type { ImagingStudy, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { adminToken, bearer } from './helpers/auth.ts';
import { makeSeries, newUid, pydicomFile, rewrite } from './helpers/dicom.ts';
import { expectValid } from './helpers/fhir.ts';
import {
  type Booked,
  bookPatientAndOrder,
  multipartBody,
  orthanc,
  orthancIdOf,
  orthancJson,
  readFhir,
  STOW_TYPE,
  seq,
  val,
} from './helpers/stow.ts';
import { testApp } from './helpers/app.ts';

const B = 'stow-test-boundary';
let app: FastifyInstance;
let auth: { authorization: string };

beforeAll(async () => {
  app = await testApp({ publicBaseUrl: 'https://ehr.example.test' });
  auth = bearer(await adminToken(app));
});
afterAll(async () => {
  await app.close();
});

const stow = (body: Buffer, url = '/dicom-web/studies', type = STOW_TYPE(B)) =>
  request(app.server).post(url).set(auth).set('content-type', type).send(body);

async function orderOf(b: Booked) {
  return app.db.one(sql.unsafe`
    SELECT study_instance_uid, orthanc_study_id, number_of_images, uploaded_at, content->>'status' AS status, version_id
    FROM orders WHERE id = ${b.orderId}`) as Promise<Record<string, unknown>>;
}

describe('STOW-RS ingest', () => {
  test('a matched series is stored, the order linked and a valid ImagingStudy built', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 4, modality: 'CT' });
    const polyglot = Buffer.from(s.files[0]!);
    polyglot.write('II*\0 TIFF-like preamble', 0, 'latin1');
    const res = await stow(multipartBody([polyglot, ...s.files.slice(1)], B));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
    expect(val(res.body, '00081190')).toBe(`https://ehr.example.test/dicom-web/studies/${s.studyUid}`);
    const refs = seq(res.body, '00081199');
    expect(refs.map((r) => val(r, '00081155')).sort()).toEqual([...s.sopUids].sort());
    for (const r of refs) {
      expect(val(r, '00081190')).toMatch(
        new RegExp(`^https://ehr\\.example\\.test/dicom-web/studies/${s.studyUid}/series/${s.seriesUid}/instances/`),
      );
    }
    // What Orthanc stored: all four instances, preamble zeroed.
    const studyId = await orthancIdOf(s.studyUid, 'Study');
    expect(studyId).toBeDefined();
    const stats = await orthancJson<{ CountInstances: number }>(`/studies/${studyId}/statistics`);
    expect(stats.CountInstances).toBe(4);
    const firstId = await orthancIdOf(s.sopUids[0]!, 'Instance');
    const file = Buffer.from(await (await orthanc(`/instances/${firstId}/file`)).arrayBuffer());
    expect(file.subarray(0, 128).every((x) => x === 0)).toBe(true);
    expect(file.subarray(128, 132).toString()).toBe('DICM');

    const order = await orderOf(b);
    expect(order).toMatchObject({
      study_instance_uid: s.studyUid,
      orthanc_study_id: studyId,
      number_of_images: 4,
      status: 'completed',
    });
    expect(order['uploaded_at']).not.toBeNull();
    const bundle = await readFhir<{ entry?: { resource: ImagingStudy }[] }>(
      app,
      auth,
      `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${s.studyUid}`,
    );
    const study = bundle.entry?.[0]?.resource;
    expect(study).toBeDefined();
    expectValid(study!);
    expect(study).toMatchObject({
      status: 'available',
      subject: { reference: `Patient/${b.patientId}` },
      basedOn: [{ reference: `ServiceRequest/${b.orderId}` }],
      endpoint: [{ reference: 'Endpoint/dicomweb' }],
      numberOfSeries: 1,
      numberOfInstances: 4,
      modality: [{ code: 'CT' }],
    });
    expect(study!.series?.[0]?.instance?.map((i) => i.number)).toEqual([1, 2, 3, 4]);
    const endpoint = await readFhir<{ address: string; connectionType: { code: string } }>(
      app,
      auth,
      'Endpoint/dicomweb',
    );
    expect([endpoint.address, endpoint.connectionType.code]).toEqual([
      'https://ehr.example.test/dicom-web',
      'dicom-wado-rs',
    ]);
    const log = (await app.db.one(sql.unsafe`
      SELECT source, uploaded_by, patient_id, order_id, number_of_files, number_new, upload_status, total_size_bytes
      FROM dicom_upload_logs WHERE study_instance_uid = ${s.studyUid}`)) as Record<string, unknown>;
    expect(log).toMatchObject({
      source: 'stow',
      uploaded_by: expect.stringMatching(/^User\/[0-9a-f-]{36}$/),
      patient_id: b.patientId,
      order_id: b.orderId,
      number_of_files: 4,
      number_new: 4,
      upload_status: 'success',
    });
    expect(Number(log['total_size_bytes'])).toBe(s.files.reduce((n, f) => n + f.length, 0));
  });

  test('the same upload twice is idempotent: nothing is counted twice', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 3 });
    expect((await stow(multipartBody(s.files, B))).status).toBe(200);
    const before = await orderOf(b);
    const again = await stow(multipartBody(s.files, B));
    expect(again.status).toBe(200);
    expect(seq(again.body, '00081199')).toHaveLength(3);
    const after = await orderOf(b);
    expect([after['number_of_images'], after['status'], after['study_instance_uid']]).toEqual([
      3,
      'completed',
      s.studyUid,
    ]);
    expect(before['number_of_images']).toBe(3);
    const study = (
      await readFhir<{ entry: { resource: ImagingStudy }[] }>(
        app,
        auth,
        `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${s.studyUid}`,
      )
    ).entry[0]!.resource;
    expect([study.numberOfInstances, study.series?.[0]?.instance?.length]).toEqual([3, 3]);
    const stats = await orthancJson<{ CountInstances: number }>(
      `/studies/${await orthancIdOf(s.studyUid, 'Study')}/statistics`,
    );
    expect(stats.CountInstances).toBe(3);
    const logs = (await app.db.any(sql.unsafe`
      SELECT number_new FROM dicom_upload_logs WHERE study_instance_uid = ${s.studyUid} ORDER BY finished_at`)) as {
      number_new: number;
    }[];
    expect(logs.map((l) => l.number_new)).toEqual([3, 0]);
    // A further series of the same study adds to it.
    const more = makeSeries({
      patientId: b.mrn,
      accession: b.accession,
      studyUid: s.studyUid,
      count: 2,
      seriesNumber: 2,
    });
    expect((await stow(multipartBody(more.files, B))).status).toBe(200);
    expect((await orderOf(b))['number_of_images']).toBe(5);
  });

  test('a PatientID mismatch gets 409 with reasons; nothing reaches Orthanc; the order is untouched', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const other = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: other.mrn, accession: b.accession, count: 2 });
    const before = await orderOf(b);
    const res = await stow(multipartBody(s.files, B));
    expect(res.status).toBe(409);
    const failed = seq(res.body, '00081198');
    expect(failed).toHaveLength(2);
    for (const f of failed) {
      expect(val(f, '00081197')).toBe(0xa900);
      expect(val(f, '00000902')).toBe("PatientID does not match the order's patient");
    }
    expect(res.body['00081199']).toBeUndefined();
    expect(String(res.headers['warning'])).toContain(`order ${b.accession} is for another patient`);
    expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
    expect(await orderOf(b)).toEqual(before);
    const log = await app.db.one(sql.unsafe`
      SELECT upload_status, number_failed FROM dicom_upload_logs WHERE study_instance_uid = ${s.studyUid}`);
    expect(log).toEqual({ upload_status: 'failed', number_failed: 2 });
  });

  test.each([
    [
      'unknown patient',
      (b: Booked) => ({ PatientID: `NOPE-${b.mrn}`, AccessionNumber: b.accession }),
      /no patient has MRN/,
    ],
    ['unknown order', (b: Booked) => ({ PatientID: b.mrn, AccessionNumber: 'NO-SUCH-ACC' }), /no order has accession/],
    ['no accession', (b: Booked) => ({ PatientID: b.mrn, AccessionNumber: null }), /no AccessionNumber/],
  ])('%s: rejected with a reason', async (_name, attrs, reason) => {
    const b = await bookPatientAndOrder(app, auth);
    const file = rewrite(pydicomFile('MR_small.dcm'), {
      ...attrs(b),
      SOPInstanceUID: newUid(),
      StudyInstanceUID: newUid(),
    });
    const res = await stow(multipartBody([file], B));
    expect(res.status).toBe(409);
    expect(val(seq(res.body, '00081198')[0], '00081197')).toBe(0xa900);
    expect(String(res.headers['warning'])).toMatch(reason);
  });

  test('good, mismatched, garbage and oversized parts in one request: 202, the good ones stored', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 2 });
    const bad = rewrite(s.files[0]!, { PatientID: 'SOMEONE-ELSE', SOPInstanceUID: newUid() });
    const noPatientId = rewrite(s.files[0]!, { PatientID: null, SOPInstanceUID: newUid() });
    const res = await stow(
      multipartBody(
        [
          s.files[0]!,
          { body: bad, type: 'application/octet-stream' },
          { body: Buffer.from('this is not DICOM at all'), type: 'application/dicom' },
          { body: noPatientId, type: null },
          s.files[1]!,
        ],
        B,
      ),
    );
    expect(res.status).toBe(202);
    expect(seq(res.body, '00081199').map((r) => val(r, '00081155'))).toEqual(s.sopUids);
    expect(seq(res.body, '00081198').map((f) => val(f, '00081197'))).toEqual([0xa900, 0xc000, 0xa900]);
    expect(String(res.headers['warning'])).toContain('missing required attribute PatientID');
    expect(await orthancIdOf(s.sopUids[1]!, 'Instance')).toBeDefined();
    expect((await orderOf(b))['number_of_images']).toBe(2);
    // One log row for the study (with the instance without PatientID, whose StudyInstanceUID was read), one for the
    // part whose study could not be read (same request).
    const logs = await app.db.any(sql.unsafe`
      SELECT study_instance_uid AS study, upload_status, number_stored, number_failed FROM dicom_upload_logs
      WHERE request_id = (SELECT request_id FROM dicom_upload_logs WHERE study_instance_uid = ${s.studyUid})
      ORDER BY study_instance_uid NULLS LAST`);
    expect(logs).toEqual([
      { study: s.studyUid, upload_status: 'partial', number_stored: 2, number_failed: 2 },
      { study: null, upload_status: 'failed', number_stored: 0, number_failed: 1 },
    ]);
  });

  test('an instance over the per-instance limit fails alone (0xA700)', async () => {
    const small = await testApp({ publicBaseUrl: 'https://ehr.example.test', stowMaxInstanceBytes: 4096 });
    try {
      const b = await bookPatientAndOrder(small, auth);
      const big = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 }).files[0]!; // CT_small: ~39 KB
      const res = await request(small.server)
        .post('/dicom-web/studies')
        .set(auth)
        .set('content-type', STOW_TYPE(B))
        .send(multipartBody([big, Buffer.from('garbage after the big one')], B));
      expect(res.status).toBe(409);
      expect(seq(res.body, '00081198').map((f) => val(f, '00081197'))).toEqual([0xa700, 0xc000]);
    } finally {
      await small.close();
    }
  });

  test('STOW to /studies/{uid} with another study gets 409 (0xA900); the URL study is accepted', async () => {
    const b = await bookPatientAndOrder(app, auth);
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
    const wrong = await stow(multipartBody(s.files, B), `/dicom-web/studies/${newUid()}`);
    expect(wrong.status).toBe(409);
    expect(val(seq(wrong.body, '00081198')[0], '00081197')).toBe(0xa900);
    expect(String(wrong.headers['warning'])).toContain('differs from');
    expect(await orthancIdOf(s.studyUid, 'Study')).toBeUndefined();
    const right = await stow(multipartBody(s.files, B), `/dicom-web/studies/${s.studyUid}`);
    expect(right.status).toBe(200);
  });

  test('a draft order refuses images', async () => {
    const b = await bookPatientAndOrder(app, auth, { status: 'draft' });
    const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
    const res = await stow(multipartBody(s.files, B));
    expect(res.status).toBe(409);
    expect(String(res.headers['warning'])).toContain('not yet actionable');
    const sr = await readFhir<ServiceRequest>(app, auth, `ServiceRequest/${b.orderId}`);
    expect(sr.status).toBe('draft');
  });
});
