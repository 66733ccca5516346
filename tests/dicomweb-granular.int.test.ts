/**
 * SMART v2 granular ImagingStudy scopes on the DICOMweb side ("one policy covers both FHIR and DICOMweb"): a doctor
 * granted patients A and C with `user/ImagingStudy.rs?modality=CT` sees exactly the CT studies of A and C over QIDO-RS
 * and WADO-RS, the same set the FHIR search gives with the same token, and the uniform 404 for everything else.
 * Real tokens, the real Orthanc and the real EHR database; the ImagingStudy resources are created through the FHIR
 * API, so the modality index is the one the FHIR side maintains.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { newUid, pydicomFile } from './helpers/dicom.ts';
import { dicomWith, first, storeInOrthanc } from './helpers/dicomweb-data.ts';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
type Modality = 'CT' | 'MR';
type Item = Record<string, { Value?: unknown[] }>;
type Auth = { authorization: string };

interface Study {
  uid: string;
  series: { uid: string; modality: Modality; instance: string }[];
}

let app: FastifyInstance;
let chunked: FastifyInstance;
let admin: Auth;
const patients: Record<'A' | 'B' | 'C', string> = { A: '', B: '', C: '' };
/** A: CT only, MR only, CT+MR; B: CT; C: CT, MR. */
const studies: Record<'aCt' | 'aMr' | 'aMixed' | 'bCt' | 'cCt' | 'cMr', Study> = {} as never;
const tag = Date.now().toString(36);

/** One study with one single-instance series per modality, from the real pydicom CT/MR files. */
function makeStudy(mrn: string, modalities: Modality[]): { study: Study; files: Buffer[] } {
  const study: Study = { uid: newUid(), series: [] };
  const files = modalities.map((modality, s) => {
    const series = { uid: newUid(), modality, instance: newUid() };
    study.series.push(series);
    return dicomWith(pydicomFile(modality === 'CT' ? 'CT_small.dcm' : 'MR_small.dcm'), {
      '00100020': { vr: 'LO', Value: [mrn] },
      '0020000D': { vr: 'UI', Value: [study.uid] },
      '0020000E': { vr: 'UI', Value: [series.uid] },
      '00080018': { vr: 'UI', Value: [series.instance] },
      '00200011': { vr: 'IS', Value: [s + 1] },
    });
  });
  return { study, files };
}

async function fhirCreate(type: string, body: Record<string, unknown>): Promise<string> {
  const res = await request(app.server)
    .post(`/fhir/${type}`)
    .set(admin)
    .set('content-type', 'application/fhir+json')
    .send(JSON.stringify({ resourceType: type, ...body }));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const imagingStudy = (patient: string, s: Study) => ({
  status: 'available',
  identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${s.uid}` }],
  subject: { reference: `Patient/${patient}` },
  series: s.series.map((x) => ({ uid: x.uid, modality: { system: DCM, code: x.modality } })),
});

beforeAll(async () => {
  app = await testApp({ dicomwebAccessCacheTtlMs: 60_000 });
  chunked = await testApp({ dicomwebQidoMaxUids: 1, dicomwebAccessCacheTtlMs: 60_000 });
  admin = bearer(await adminToken(app));
  const plan = {
    A: { aCt: ['CT'], aMr: ['MR'], aMixed: ['CT', 'MR'] },
    B: { bCt: ['CT'] },
    C: { cCt: ['CT'], cMr: ['MR'] },
  } as const;
  const files: Buffer[] = [];
  for (const who of ['A', 'B', 'C'] as const) {
    const mrn = `MRN-G${who}-${tag}`;
    patients[who] = await fhirCreate('Patient', {
      name: [{ family: `Granular${who}${tag}` }],
      identifier: [{ system: 'urn:test:mrn', value: mrn }],
    });
    for (const [key, modalities] of Object.entries(plan[who])) {
      const made = makeStudy(mrn, [...modalities]);
      studies[key as keyof typeof studies] = made.study;
      files.push(...made.files);
    }
  }
  await storeInOrthanc(files);
  for (const [key, s] of Object.entries(studies)) {
    const who = key[0]?.toUpperCase() as 'A' | 'B' | 'C';
    await fhirCreate('ImagingStudy', imagingStudy(patients[who], s));
  }
});

afterAll(async () => {
  await app?.close();
  await chunked?.close();
});

/** A doctor's token granted A and C, with `scope`. */
async function doctor(scope: string): Promise<Auth> {
  const username = `gran-doc-${tag}`;
  const token = await tokenFor(app, { user: { username, roles: ['doctor'] }, scope });
  await grantPatient(app, username, patients.A);
  await grantPatient(app, username, patients.C);
  return bearer(token);
}

async function qido(path: string, auth: Auth, on: FastifyInstance = app): Promise<Item[]> {
  const res = await request(on.server).get(`/dicom-web${path}`).set(auth);
  expect(res.status, `${path}: ${res.text}`).toBe(200);
  return JSON.parse(res.text) as Item[];
}

const uidsOf = (items: Item[], t: string) => items.map((i) => String(first(i, t))).sort();
const uids = (...ss: Study[]) => ss.map((s) => s.uid).sort();
const seriesOf = (...ss: Study[]) => ss.flatMap((s) => s.series.map((x) => x.uid)).sort();
const NOT_FOUND = '{"00000902":{"vr":"LO","Value":["Not found"]}}';

async function metadataStatus(s: Study, auth: Auth): Promise<number> {
  const res = await request(app.server).get(`/dicom-web/studies/${s.uid}/metadata`).set(auth);
  if (res.status === 404) expect(res.text).toBe(NOT_FOUND);
  return res.status;
}

/** The StudyInstanceUIDs of a FHIR ImagingStudy search with the caller's token. */
async function fhirStudyUids(query: string, auth: Auth): Promise<string[]> {
  const res = await request(app.server).get(`/fhir/ImagingStudy?${query}&_count=100`).set(auth);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const entries = (res.body.entry ?? []) as { resource: { identifier?: { system?: string; value?: string }[] } }[];
  return entries
    .map((e) => e.resource.identifier?.find((i) => i.system === 'urn:dicom:uid')?.value?.replace(/^urn:oid:/, ''))
    .map(String)
    .sort();
}

describe('user/ImagingStudy.rs?modality=CT for a doctor granted A and C', () => {
  let ct: Auth;
  beforeAll(async () => {
    ct = await doctor('user/ImagingStudy.rs?modality=CT');
  });

  test.each([
    [1, () => app],
    [2, () => app],
    [1, () => chunked],
    [2, () => chunked],
  ])('QIDO /studies, limit=%i: exactly the CT studies of A and C, in full pages', async (limit, on) => {
    const expected = uids(studies.aCt, studies.aMixed, studies.cCt);
    const seen: string[] = [];
    for (let offset = 0; offset < 50; offset += limit) {
      const page = await qido(`/studies?limit=${limit}&offset=${offset}`, ct, on());
      if (page.length === 0) break;
      if (seen.length + limit <= expected.length) expect(page).toHaveLength(limit);
      seen.push(...uidsOf(page, '0020000D'));
    }
    expect(seen.sort()).toEqual(expected);
  });

  test('QIDO at series and instance level: only series of the CT studies', async () => {
    // The restriction selects studies (ImagingStudy resources), as on the FHIR side: a matching study is visible whole.
    const expected = seriesOf(studies.aCt, studies.aMixed, studies.cCt);
    expect(uidsOf(await qido('/series', ct), '0020000E')).toEqual(expected);
    expect(uidsOf(await qido('/series', ct, chunked), '0020000E')).toEqual(expected);
    const ctSeries = [studies.aCt, studies.aMixed, studies.cCt]
      .flatMap((s) => s.series.filter((x) => x.modality === 'CT').map((x) => x.uid))
      .sort();
    expect(uidsOf(await qido('/series?Modality=CT', ct), '0020000E')).toEqual(ctSeries);
    expect(uidsOf(await qido(`/studies/${studies.aCt.uid}/series`, ct), '0020000E')).toEqual(seriesOf(studies.aCt));
    expect(uidsOf(await qido('/instances', ct), '00080018')).toHaveLength(4);
  });

  test("searches naming A's MR study or B's CT study answer []", async () => {
    for (const s of [studies.aMr, studies.cMr, studies.bCt]) {
      expect(await qido(`/studies?StudyInstanceUID=${s.uid}`, ct)).toEqual([]);
      expect(await qido(`/studies/${s.uid}/series`, ct)).toEqual([]);
      expect(await qido(`/series?StudyInstanceUID=${s.uid}`, ct)).toEqual([]);
      expect(await qido(`/studies/${s.uid}/series/${s.series[0]?.uid}/instances`, ct)).toEqual([]);
    }
  });

  test("WADO: A's and C's CT studies answer; A's MR study and B's CT study get the uniform 404", async () => {
    expect(await metadataStatus(studies.aCt, ct)).toBe(200);
    expect(await metadataStatus(studies.aMixed, ct)).toBe(200);
    expect(await metadataStatus(studies.cCt, ct)).toBe(200);
    expect(await metadataStatus(studies.aMr, ct)).toBe(404);
    expect(await metadataStatus(studies.cMr, ct)).toBe(404);
    expect(await metadataStatus(studies.bCt, ct)).toBe(404);
    const mr = studies.aMr.series[0];
    const frame = await request(app.server)
      .get(`/dicom-web/studies/${studies.aMr.uid}/series/${mr?.uid}/instances/${mr?.instance}/frames/1`)
      .set(ct);
    const random = await request(app.server)
      .get(`/dicom-web/studies/${newUid()}/series/${newUid()}/instances/${newUid()}/frames/1`)
      .set(ct);
    expect(frame.status).toBe(404);
    expect(frame.text).toBe(random.text);
  });

  test('the FHIR search with the same token agrees with QIDO, patient by patient', async () => {
    for (const who of ['A', 'C'] as const) {
      const onFhir = await fhirStudyUids(`patient=${patients[who]}`, ct);
      const onQido = uidsOf(await qido(`/studies?PatientID=MRN-G${who}-${tag}`, ct), '0020000D');
      expect(onFhir.length).toBeGreaterThan(0);
      expect(onQido).toEqual(onFhir);
    }
    expect(await fhirStudyUids(`patient=${patients.A}`, ct)).toEqual(uids(studies.aCt, studies.aMixed));
  });
});

describe('other restriction forms', () => {
  test('system|code: only MR studies of A and C', async () => {
    const mr = await doctor(`user/ImagingStudy.rs?modality=${DCM}|MR`);
    expect(uidsOf(await qido('/studies', mr), '0020000D')).toEqual(uids(studies.aMr, studies.aMixed, studies.cMr));
    expect(await metadataStatus(studies.aCt, mr)).toBe(404);
    expect(await metadataStatus(studies.aMr, mr)).toBe(200);
    expect(await fhirStudyUids(`patient=${patients.A}`, mr)).toEqual(uids(studies.aMr, studies.aMixed));
  });

  test('two restricted scopes on modality are ORed: every study of A and C', async () => {
    const both = await doctor('user/ImagingStudy.rs?modality=CT user/ImagingStudy.rs?modality=MR');
    const all = uids(studies.aCt, studies.aMr, studies.aMixed, studies.cCt, studies.cMr);
    expect(uidsOf(await qido('/studies', both), '0020000D')).toEqual(all);
    expect(await metadataStatus(studies.aMr, both)).toBe(200);
  });

  test('a restriction on another parameter fails closed on DICOMweb', async () => {
    const status = await doctor('user/ImagingStudy.rs?status=available');
    expect(await qido('/studies', status)).toEqual([]);
    expect(await qido(`/studies/${studies.aCt.uid}/series`, status)).toEqual([]);
    expect(await metadataStatus(studies.aCt, status)).toBe(404);
  });

  test('an all-patients caller with modality=CT: every CT study, no MR study, no unlinked study', async () => {
    const unlinked = makeStudy(`MRN-GA-${tag}`, ['CT']);
    await storeInOrthanc(unlinked.files);
    const adminCt = bearer(
      await tokenFor(app, {
        user: { username: `gran-admin-${tag}`, roles: ['admin'] },
        scope: 'user/ImagingStudy.rs?modality=CT',
      }),
    );
    const mine = Object.values(studies).map((s) => s.uid);
    const list = [...mine, unlinked.study.uid].join(',');
    expect(uidsOf(await qido(`/studies?StudyInstanceUID=${list}`, adminCt), '0020000D')).toEqual(
      uids(studies.aCt, studies.aMixed, studies.bCt, studies.cCt),
    );
    expect(await metadataStatus(studies.bCt, adminCt)).toBe(200);
    expect(await metadataStatus(studies.aMr, adminCt)).toBe(404);
    expect(await metadataStatus(unlinked.study, adminCt)).toBe(404);
    expect(await metadataStatus(unlinked.study, admin)).toBe(200);
  });
});

describe('cached allowed sets are never shared across restrictions', () => {
  test('unrestricted, CT-only and MR-only tokens for the same patients, interleaved', async () => {
    const everything = await doctor('user/*.rs');
    const ct = await doctor('user/ImagingStudy.rs?modality=CT');
    const mr = await doctor('user/ImagingStudy.rs?modality=MR');
    const all = uids(studies.aCt, studies.aMr, studies.aMixed, studies.cCt, studies.cMr);
    for (let round = 0; round < 2; round++) {
      expect(uidsOf(await qido('/studies', everything), '0020000D')).toEqual(all);
      expect(uidsOf(await qido('/studies', ct), '0020000D')).toEqual(uids(studies.aCt, studies.aMixed, studies.cCt));
      expect(uidsOf(await qido('/studies', mr), '0020000D')).toEqual(uids(studies.aMr, studies.aMixed, studies.cMr));
      expect(await metadataStatus(studies.aMr, everything)).toBe(200);
      expect(await metadataStatus(studies.aMr, ct)).toBe(404);
      expect(await metadataStatus(studies.aMr, mr)).toBe(200);
      expect(await metadataStatus(studies.aCt, mr)).toBe(404);
    }
  });
});
