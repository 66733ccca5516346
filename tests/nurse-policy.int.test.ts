/**
 * What a nurse may do on the real stack: record care for their granted patients (visits, orders, observations) and
 * see everything of them, images and reports included, but neither store images (STOW-RS, an SR saved from the
 * viewer) nor write radiology reports.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { ctSeries, newUid } from './e2e/helpers/ct-phantom.ts';
import { type Auth, type Booked, bookPatientAndOrder, stow } from './e2e/helpers/ehr.ts';
import { multipartBody, STOW_TYPE } from './helpers/stow.ts';

let app: FastifyInstance;
let admin: Auth;
let nurse: Auth;
let booked: Booked;
let studyUid: string;

const post = (auth: Auth, body: { resourceType: string } & Record<string, unknown>) =>
  app.inject({
    method: 'POST',
    url: `/fhir/${body.resourceType}`,
    headers: { ...auth, 'content-type': 'application/fhir+json' },
    payload: JSON.stringify(body),
  });

const series = (slices: number) =>
  ctSeries({
    patientId: booked.mrn,
    patientName: 'Nursed^Viewer',
    studyInstanceUid: studyUid,
    accessionNumber: booked.accession,
    slices,
    size: 32,
  });

beforeAll(async () => {
  app = await testApp();
  admin = bearer(await adminToken(app));
  booked = await bookPatientAndOrder(app, admin, 'Nursed');
  studyUid = newUid();
  await stow(app, admin, series(2).files);
  nurse = bearer(await tokenFor(app, { user: { username: 'policy-nurse', roles: ['nurse'] }, scope: 'user/*.cruds' }));
  await grantPatient(app, 'policy-nurse', booked.patientId);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

describe('a nurse of a granted patient', () => {
  const subject = () => ({ reference: `Patient/${booked.patientId}` });

  test('records a visit and an observation, and reads the images', async () => {
    const visit = await post(nurse, {
      resourceType: 'Encounter',
      status: 'arrived',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: subject(),
    });
    expect(visit.statusCode, visit.body).toBe(201);
    const obs = await post(nurse, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: subject(),
      valueQuantity: { value: 72, unit: '/min' },
    });
    expect(obs.statusCode, obs.body).toBe(201);
    const studies = await app.inject({
      method: 'GET',
      url: `/fhir/ImagingStudy?patient=${booked.patientId}`,
      headers: nurse,
    });
    expect((studies.json() as { total?: number; entry?: unknown[] }).entry?.length).toBe(1);
    const qido = await app.inject({
      method: 'GET',
      url: `/dicom-web/studies?StudyInstanceUID=${studyUid}`,
      headers: nurse,
    });
    expect(qido.statusCode).toBe(200);
  });

  test('may not write a radiology report (403, nothing stored)', async () => {
    const res = await post(nurse, {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '18748-4' }] },
      subject: subject(),
      basedOn: [{ reference: `ServiceRequest/${booked.orderId}` }],
      conclusion: 'written by a nurse',
    });
    expect(res.statusCode).toBe(403);
    const found = await app.inject({
      method: 'GET',
      url: `/fhir/DiagnosticReport?patient=${booked.patientId}`,
      headers: admin,
    });
    expect((found.json() as { entry?: unknown[] }).entry ?? []).toEqual([]);
  });

  test('may not store images into the patient study: every instance refused with 0x0124, nothing stored', async () => {
    const boundary = `b-${randomUUID()}`;
    const extra = series(1).files;
    const res = await app.inject({
      method: 'POST',
      url: '/dicom-web/studies',
      headers: { ...nurse, accept: 'application/dicom+json', 'content-type': STOW_TYPE(boundary) },
      payload: multipartBody(extra, boundary),
    });
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    const failed = (res.json() as Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>)['00081198'];
    expect(failed?.Value?.map((f) => f['00081197']?.Value?.[0])).toEqual([0x0124]);
    const instances = await app.inject({
      method: 'GET',
      url: `/dicom-web/studies/${studyUid}/instances`,
      headers: { ...admin, accept: 'application/dicom+json' },
    });
    expect((instances.json() as unknown[]).length).toBe(2);
  });
});
