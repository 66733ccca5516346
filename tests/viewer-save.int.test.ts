import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { narrowScopes } from '../src/auth/scopes.ts';
import {
  ensureOhifClient,
  OHIF_CLIENT_ID,
  OHIF_FORMER_SCOPE_CEILINGS,
  OHIF_SCOPE_CEILING,
} from '../src/viewer/oidc-client.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE, seq, val } from './helpers/stow.ts';

/**
 * Saving from OHIF (SR, SEG, measurements) is a STOW-RS into the open study with the viewer's token: the OHIF client
 * may ask for `user/ImagingStudy.crs`, and the access policy decides per user and patient.
 */

const B = 'viewer-save-boundary';
let app: FastifyInstance;
let admin: { authorization: string };

beforeAll(async () => {
  app = await testApp();
  admin = bearer(await adminToken(app));
});
afterAll(async () => {
  await app?.close();
});

const ceiling = async () =>
  String(
    await app.db.oneFirst(sql.unsafe`SELECT scope_ceiling FROM oauth_clients WHERE client_id = ${OHIF_CLIENT_ID}`),
  );

describe("the OHIF client's scope ceiling", () => {
  test.each(OHIF_FORMER_SCOPE_CEILINGS.map((c) => [c]))(
    'lets the viewer create imaging and refresh; the former default %s is upgraded, a custom one kept',
    async (former) => {
      await ensureOhifClient(app.db, 'http://localhost:8000');
      expect(narrowScopes('openid fhirUser online_access user/ImagingStudy.crs', await ceiling())).toEqual([
        'openid',
        'fhirUser',
        'online_access',
        'user/ImagingStudy.crs',
      ]);
      await app.db.query(sql.unsafe`UPDATE oauth_clients SET scope_ceiling = ${former}
      WHERE client_id = ${OHIF_CLIENT_ID}`);
      await ensureOhifClient(app.db, 'http://localhost:8000');
      expect(await ceiling()).toBe(OHIF_SCOPE_CEILING);
      await app.db.query(sql.unsafe`UPDATE oauth_clients SET scope_ceiling = 'openid user/ImagingStudy.rs'
      WHERE client_id = ${OHIF_CLIENT_ID}`);
      await ensureOhifClient(app.db, 'http://localhost:8000');
      expect(await ceiling()).toBe('openid user/ImagingStudy.rs');
      await app.db.query(sql.unsafe`UPDATE oauth_clients SET scope_ceiling = ${OHIF_SCOPE_CEILING}
      WHERE client_id = ${OHIF_CLIENT_ID}`);
    },
  );
});

describe('an SR saved from the viewer into the open study', () => {
  test('a doctor of the patient: stored, in the linked study; an auditor: 0x0124 with a reason', async () => {
    const b = await bookPatientAndOrder(app, admin);
    const images = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
    const stow = (auth: { authorization: string }, files: Buffer[]) =>
      request(app.server)
        .post('/dicom-web/studies')
        .set(auth)
        .set('content-type', STOW_TYPE(B))
        .send(multipartBody(files, B));
    expect((await stow(admin, images.files)).status).toBe(200);
    // What OHIF's SR export carries: the study's PatientID, AccessionNumber and StudyInstanceUID, a new series.
    const sr = makeSeries({
      patientId: b.mrn,
      accession: b.accession,
      studyUid: images.studyUid,
      seriesUid: newUid(),
      count: 1,
      modality: 'SR',
      seriesNumber: 4700,
    });
    const scope = 'openid fhirUser user/ImagingStudy.crs';
    const username = `viewer-save-${b.patientId}`;
    const doctor = bearer(await tokenFor(app, { user: { username, roles: ['doctor'] }, scope }));
    await grantPatient(app, username, b.patientId);
    const auditor = bearer(await tokenFor(app, { user: { username: `${username}-aud`, roles: ['auditor'] }, scope }));

    const refused = await stow(auditor, sr.files);
    expect(refused.status).toBe(409);
    const failed = seq(refused.body, '00081198')[0];
    expect(val(failed, '00081197')).toBe(0x0124);
    expect(String(val(failed, '00000902'))).toMatch(/not authorized/);

    const saved = await stow(doctor, sr.files);
    expect(saved.status, saved.text).toBe(200);
    const res = await request(app.server).get(`/dicom-web/studies/${images.studyUid}/series`).set(doctor);
    const series = (JSON.parse(res.text) as Parameters<typeof val>[0][]).map((s) => val(s, '0020000E'));
    expect(series.sort()).toEqual([images.seriesUid, sr.seriesUid].sort());
  });
});
