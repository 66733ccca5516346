/**
 * Audit of DICOMweb against the real stack: QIDO-RS is a DICOM Query with the query base64, WADO-RS a
 * transfer (read) with the study UID, STOW-RS a transfer (create) with the study and order, committed in the STOW's
 * EHR transaction; a hidden study (404) records no patient. Each request leaves exactly one stored event.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { eventOf, patientsOf, queryOf, studyUidsOf, subtypeOf, userOf } from './helpers/audit.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { newUid, pydicomFile, rewrite } from './helpers/dicom.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';

let app: FastifyInstance;
let data: Dataset;
const auth = {} as Record<'admin' | 'patA', { authorization: string }>;

beforeAll(async () => {
  app = await testApp();
  data = await seedDataset(app, `aud${Date.now().toString(36)}`);
  auth.admin = bearer(await adminToken(app));
  auth.patA = bearer(
    await tokenFor(app, {
      user: { username: `audpat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
});
afterAll(async () => {
  await app?.close();
});

test("QIDO-RS → DCM 110112 Query, the raw query base64, patient A's entity", async () => {
  const res = await request(app.server).get(`/dicom-web/studies?PatientID=${data.A.mrn}&limit=5`).set(auth.patA);
  expect(res.status).toBe(200);
  const e = await eventOf(app, res);
  expect(e.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110112' });
  expect(subtypeOf(e)).toEqual(['search-type']);
  expect(e.action).toBe('E');
  expect(e.outcome).toBe('0');
  expect(queryOf(e)).toBe(`/studies?PatientID=${data.A.mrn}&limit=5`);
  expect(patientsOf(e)).toEqual([`Patient/${data.A.id}`]);
  expect(userOf(e)?.who?.identifier?.value).toBeTruthy();
});

test('WADO-RS → DCM 110104 Instances Transferred, action R, the study UID and patient A', async () => {
  const uid = data.A.studies[0]?.uid as string;
  const res = await request(app.server).get(`/dicom-web/studies/${uid}/metadata`).set(auth.patA);
  expect(res.status).toBe(200);
  const e = await eventOf(app, res);
  expect(e.type?.code).toBe('110104');
  expect(e.action).toBe('R');
  expect(subtypeOf(e)).toEqual(['read']);
  expect(studyUidsOf(e)).toEqual([uid]);
  expect(patientsOf(e)).toEqual([`Patient/${data.A.id}`]);
});

test("a hidden study (B's, 404 to patient A) is recorded as a failure without B's patient data", async () => {
  const uid = data.B.studies[0]?.uid as string;
  const res = await request(app.server).get(`/dicom-web/studies/${uid}/metadata`).set(auth.patA);
  expect(res.status).toBe(404);
  const e = await eventOf(app, res);
  expect(e.outcome).toBe('4');
  expect(studyUidsOf(e)).toEqual([uid]);
  expect(patientsOf(e)).toEqual([]);
  // B is named only as the patient the request targeted, for auditors (never a patient entity, never B's data).
  const requested = e.entity?.filter((x) => x.detail?.some((d) => d.type === 'requested-patient'));
  expect(requested?.map((x) => x.what?.reference)).toEqual([`Patient/${data.B.id}`]);
  const json = JSON.stringify(e);
  for (const secret of [data.B.mrn, 'Berg']) expect(json).not.toContain(secret);
});

test('STOW-RS → DCM 110104 action C with the study, the order and the patient, in the same transaction', async () => {
  const booked = await bookPatientAndOrder(app, auth.admin);
  const study = newUid();
  const instance = rewrite(pydicomFile('CT_small.dcm'), {
    PatientID: booked.mrn,
    AccessionNumber: booked.accession,
    StudyInstanceUID: study,
    SeriesInstanceUID: newUid(),
    SOPInstanceUID: newUid(),
  });
  const boundary = 'audit-boundary';
  const res = await request(app.server)
    .post('/dicom-web/studies')
    .set(auth.admin)
    .set('content-type', STOW_TYPE(boundary))
    .set('accept', 'application/dicom+json')
    .send(multipartBody([instance], boundary));
  expect(res.status, res.text).toBe(200);
  const e = await eventOf(app, res);
  expect(e.type?.code).toBe('110104');
  expect(e.action).toBe('C');
  expect(subtypeOf(e)).toEqual(['create']);
  expect(studyUidsOf(e)).toEqual([study]);
  expect(patientsOf(e)).toEqual([`Patient/${booked.patientId}`]);
  const order = e.entity?.find((x) => x.what?.reference === `ServiceRequest/${booked.orderId}`);
  expect(order?.what?.identifier?.value).toBe(booked.accession);
  const eventTx = await app.db.oneFirst(sql.unsafe`SELECT xmin::text FROM audit_event WHERE id = ${e.id as string}`);
  // The upload log rows are written directly on the STOW's EHR transaction (the FHIR writes in savepoints of it).
  const logTx = await app.db.anyFirst(
    sql.unsafe`SELECT DISTINCT xmin::text FROM dicom_upload_logs WHERE request_id = ${String(res.headers['x-request-id'])}`,
  );
  expect(logTx).toEqual([eventTx]);
});
