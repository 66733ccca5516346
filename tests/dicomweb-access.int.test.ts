/**
 * QIDO-RS and WADO-RS filtered by patient access, with real tokens, the real Orthanc and the real EHR database:
 * patient A's token sees only A; B's UIDs and random UIDs give indistinguishable 404s; a doctor
 * granted A and C pages through exactly A's and C's studies; unlinked studies are for all-patients callers only.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { studyLinksChanged } from '../src/imaging/study-links.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';
import { type Dataset, first, instanceUids, seedDataset, seriesUids, studyUids } from './helpers/dicomweb-data.ts';

let app: FastifyInstance;
let chunked: FastifyInstance;
let data: Dataset;
const auth: Record<'patA' | 'docAC' | 'admin', { authorization: string }> = {} as never;

type Item = Record<string, { Value?: unknown[] }>;
const uidsOf = (items: Item[], tag: string) => items.map((i) => String(first(i, tag))).sort();

beforeAll(async () => {
  app = await testApp({ dicomwebAccessCacheTtlMs: 60_000 });
  chunked = await testApp({ dicomwebQidoMaxUids: 1 });
  data = await seedDataset(app, `acc${Date.now().toString(36)}`);
  auth.admin = bearer(await adminToken(app));
  auth.patA = bearer(
    await tokenFor(app, {
      user: { username: `pat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
  const doctor = `doc-${data.A.id}`;
  auth.docAC = bearer(await tokenFor(app, { user: { username: doctor, roles: ['doctor'] }, scope: 'user/*.rs' }));
  await grantPatient(app, doctor, data.A.id);
  await grantPatient(app, doctor, data.C.id);
});

afterAll(async () => {
  await app?.close();
  await chunked?.close();
});

async function qido(path: string, who: keyof typeof auth, on: FastifyInstance = app): Promise<Item[]> {
  const res = await request(on.server).get(`/dicom-web${path}`).set(auth[who]);
  expect(res.status, `${path}: ${res.text}`).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
  return JSON.parse(res.text) as Item[];
}

describe("a patient-A token: every QIDO form returns only A's data", () => {
  const aStudies = () => studyUids(data.A).sort();
  test.each([
    ['/studies?PatientName=*'],
    ['/studies?PatientID=*'],
    ['/studies?includefield=all'],
    ['/studies?StudyDate=19000101-20991231'],
    ['/studies?limit=100&offset=0&fuzzymatching=true'],
  ])("%s → exactly A's studies", async (path) => {
    const items = await qido(path, 'patA');
    expect(uidsOf(items, '0020000D')).toEqual(aStudies());
    for (const i of items) expect(first(i, '00100020')).toBe(data.A.mrn);
  });

  test("PatientID=<B's MRN>, an offset past the end, B's UID in a list", async () => {
    expect(await qido(`/studies?PatientID=${data.B.mrn}`, 'patA')).toEqual([]);
    expect(await qido('/studies?offset=2', 'patA')).toEqual([]);
    const mixed = await qido(`/studies?StudyInstanceUID=${data.A.studies[0]?.uid},${data.B.studies[0]?.uid}`, 'patA');
    expect(uidsOf(mixed, '0020000D')).toEqual([data.A.studies[0]?.uid]);
  });

  test('top-level /series and /instances, also with a date range and includefield=all', async () => {
    expect(uidsOf(await qido('/series', 'patA'), '0020000E')).toEqual(seriesUids(data.A).sort());
    expect(uidsOf(await qido('/series?includefield=all&StudyDate=19000101-20991231', 'patA'), '0020000E')).toEqual(
      seriesUids(data.A).sort(),
    );
    expect(uidsOf(await qido('/instances', 'patA'), '00080018')).toEqual(instanceUids(data.A).sort());
    expect(uidsOf(await qido('/instances?includefield=all&limit=1000', 'patA'), '00080018')).toEqual(
      instanceUids(data.A).sort(),
    );
  });

  test("searches under B's study or series look like an unknown study", async () => {
    const b = data.B.studies[0];
    const bs = b?.series[0]?.uid;
    for (const path of [
      `/studies/${b?.uid}/series`,
      `/studies/${b?.uid}/instances`,
      `/studies/${b?.uid}/series/${bs}/instances`,
      `/series?StudyInstanceUID=${b?.uid}`,
      `/instances?StudyInstanceUID=${b?.uid}`,
      `/series?SeriesInstanceUID=${bs}`,
    ]) {
      expect(await qido(path, 'patA'), path).toEqual([]);
    }
    expect(await qido(`/studies/${newUid()}/series`, 'patA')).toEqual([]);
  });

  test("A's own study-level searches work", async () => {
    const a = data.A.studies[1];
    expect(uidsOf(await qido(`/studies/${a?.uid}/series`, 'patA'), '0020000E')).toEqual(
      a?.series.map((s) => s.uid).sort(),
    );
  });

  test("the unlinked study carrying A's MRN is invisible to A, visible to an admin", async () => {
    const u = data.unlinked.uid;
    expect(await qido(`/studies?StudyInstanceUID=${u}`, 'patA')).toEqual([]);
    expect(uidsOf(await qido(`/studies?StudyInstanceUID=${u}`, 'admin'), '0020000D')).toEqual([u]);
    const metadata = await request(app.server).get(`/dicom-web/studies/${u}/metadata`).set(auth.admin);
    expect(metadata.status).toBe(200);
    const hidden = await request(app.server).get(`/dicom-web/studies/${u}/metadata`).set(auth.patA);
    expect(hidden.status).toBe(404);
  });
});

describe("WADO on B's UIDs and on random UIDs: the same 404", () => {
  const forms = (st: string, se: string, i: string) => [
    `/studies/${st}`,
    `/studies/${st}/metadata`,
    `/studies/${st}/rendered`,
    `/studies/${st}/thumbnail`,
    `/studies/${st}/series/${se}`,
    `/studies/${st}/series/${se}/metadata`,
    `/studies/${st}/series/${se}/rendered`,
    `/studies/${st}/series/${se}/thumbnail`,
    `/studies/${st}/series/${se}/instances/${i}`,
    `/studies/${st}/series/${se}/instances/${i}/metadata`,
    `/studies/${st}/series/${se}/instances/${i}/rendered`,
    `/studies/${st}/series/${se}/instances/${i}/thumbnail`,
    `/studies/${st}/series/${se}/instances/${i}/frames/1`,
    `/studies/${st}/series/${se}/instances/${i}/frames/1/rendered`,
    `/studies/${st}/series/${se}/instances/${i}/bulk/7fe00010`,
    `/wado?requestType=WADO&studyUID=${st}&seriesUID=${se}&objectUID=${i}`,
    `/wado?requestType=WADO&studyUID=${st}&seriesUID=${se}&objectUID=${i}&contentType=application%2Fdicom`,
  ];

  test('every form: 404 with identical headers and body', async () => {
    const b = data.B.studies[0];
    const bForms = forms(b?.uid ?? '', b?.series[0]?.uid ?? '', b?.series[0]?.instances[0] ?? '');
    const rForms = forms(newUid(), newUid(), newUid());
    for (const [k, path] of bForms.entries()) {
      const onB = await request(app.server).get(`/dicom-web${path}`).set(auth.patA);
      const onRandom = await request(app.server).get(`/dicom-web${rForms[k]}`).set(auth.patA);
      expect(onB.status, path).toBe(404);
      expect(onRandom.status).toBe(404);
      expect(onB.text).toBe(onRandom.text);
      expect(onB.text).toBe('{"00000902":{"vr":"LO","Value":["Not found"]}}');
      for (const h of ['content-type', 'content-length', 'warning']) expect(onB.headers[h]).toBe(onRandom.headers[h]);
    }
  });

  test("an admin gets the same 404 body for a random UID (Orthanc's own 404 is replaced)", async () => {
    const res = await request(app.server).get(`/dicom-web/studies/${newUid()}/metadata`).set(auth.admin);
    expect(res.status).toBe(404);
    expect(res.text).toBe('{"00000902":{"vr":"LO","Value":["Not found"]}}');
  });

  test("A's study UID does not unlock B's series or instances", async () => {
    const a = data.A.studies[0];
    const b = data.B.studies[0];
    const bse = b?.series[0];
    for (const path of [
      `/studies/${a?.uid}/series/${bse?.uid}/metadata`,
      `/studies/${a?.uid}/series/${bse?.uid}/instances/${bse?.instances[0]}/frames/1`,
      `/wado?requestType=WADO&studyUID=${a?.uid}&seriesUID=${bse?.uid}&objectUID=${bse?.instances[0]}`,
    ]) {
      const res = await request(app.server).get(`/dicom-web${path}`).set(auth.patA);
      expect(res.status, path).toBe(404);
    }
  });

  test("A's own WADO forms answer", async () => {
    const a = data.A.studies[0];
    const se = a?.series[0];
    const ok = forms(a?.uid ?? '', se?.uid ?? '', se?.instances[0] ?? '');
    for (const path of ok) {
      const res = await request(app.server).get(`/dicom-web${path}`).set(auth.patA).buffer(true);
      expect(res.status, path).toBe(200);
    }
  });
});

describe('a doctor granted A and C pages through exactly their studies', () => {
  test.each([
    [1, 'single query', () => app],
    [3, 'single query', () => app],
    [1, 'chunked merge (one UID per Orthanc query)', () => chunked],
    [3, 'chunked merge (one UID per Orthanc query)', () => chunked],
  ])('limit=%i, %s', async (limit, _mode, on) => {
    const seen: string[] = [];
    for (let offset = 0; offset < 100; offset += limit) {
      const page = await qido(`/studies?limit=${limit}&offset=${offset}`, 'docAC', on());
      if (page.length === 0) break;
      if (seen.length + limit <= 4) expect(page).toHaveLength(limit);
      seen.push(...uidsOf(page, '0020000D'));
    }
    expect(seen.sort()).toEqual(studyUids(data.A, data.C).sort());
  });

  test('no series or instance of B through top-level searches', async () => {
    const series = uidsOf(await qido('/series', 'docAC', chunked), '0020000E');
    expect(series).toEqual(seriesUids(data.A, data.C).sort());
  });
});

describe('the study → patient cache is invalidated when links change', () => {
  test('a study linked by STOW-RS is visible at once to a caller whose allowed set is cached (60 s cache)', async () => {
    const booked = await bookPatientAndOrder(app, auth.admin);
    const patientAuth = bearer(
      await tokenFor(app, {
        user: { username: `pat-${booked.patientId}`, roles: [] },
        scope: 'patient/*.rs',
        patient: booked.patientId,
      }),
    );
    const list = async () => {
      const res = await request(app.server).get('/dicom-web/studies').set(patientAuth);
      expect(res.status).toBe(200);
      return uidsOf(JSON.parse(res.text) as Item[], '0020000D');
    };
    expect(await list()).toEqual([]); // caches the (empty) allowed set
    const s = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 2 });
    const boundary = 'cache-test-boundary';
    const stored = await request(app.server)
      .post('/dicom-web/studies')
      .set(auth.admin)
      .set('content-type', STOW_TYPE(boundary))
      .send(multipartBody(s.files, boundary));
    expect(stored.status).toBe(200);
    expect(await list()).toEqual([s.studyUid]);
  });

  test('an ImagingStudy re-pointed or deleted through the FHIR API takes effect at once (60 s cache)', async () => {
    const study = data.A.studies[0]!;
    const id = `is-${study.uid.slice(-20)}`;
    const path = `/dicom-web/studies/${study.uid}/metadata`;
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(200);
    expect(uidsOf(await qido('/studies', 'patA'), '0020000D')).toContain(study.uid);

    const resource = (subject: string) => ({
      resourceType: 'ImagingStudy',
      id,
      status: 'available',
      subject: { reference: `Patient/${subject}` },
      identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${study.uid}` }],
    });
    const put = (subject: string) =>
      request(app.server)
        .put(`/fhir/ImagingStudy/${id}`)
        .set(auth.admin)
        .set('content-type', 'application/fhir+json')
        .send(resource(subject));
    expect((await put(data.B.id)).status).toBe(200);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(404);
    expect(uidsOf(await qido('/studies', 'patA'), '0020000D')).not.toContain(study.uid);

    expect((await put(data.A.id)).status).toBe(200);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(200);
    expect((await request(app.server).delete(`/fhir/ImagingStudy/${id}`).set(auth.admin)).status).toBe(204);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(404);
    expect(uidsOf(await qido('/studies', 'patA'), '0020000D')).not.toContain(study.uid);
    // Restore the link for the other tests of this file.
    expect((await put(data.A.id)).status).toBe(201);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(200);
  });

  test('re-pointing a study to another patient takes effect at once after studyLinksChanged', async () => {
    const a2 = data.A.studies[1]?.uid ?? '';
    const path = `/dicom-web/studies/${a2}/metadata`;
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(200);
    expect(uidsOf(await qido('/studies', 'patA'), '0020000D')).toContain(a2);
    await app.db.query(
      sql.unsafe`UPDATE imaging_studies SET patient_id = ${data.B.id} WHERE study_instance_uid = ${a2}`,
    );
    studyLinksChanged(a2);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(404);
    expect(uidsOf(await qido('/studies', 'patA'), '0020000D')).not.toContain(a2);
    await app.db.query(
      sql.unsafe`UPDATE imaging_studies SET patient_id = ${data.A.id} WHERE study_instance_uid = ${a2}`,
    );
    studyLinksChanged(a2);
    expect((await request(app.server).get(path).set(auth.patA)).status).toBe(200);
  });
});
