/**
 * Study-level QIDO-RS answered from the EHR's study index (src/dicomweb/qido/study-answers-store.ts) against the real Orthanc
 * and database: for a table of queries the index answers exactly what the Orthanc path answers for the same caller
 * (same studies, attributes, order and pages); a new STOWed instance, an instance that reached Orthanc behind the
 * EHR's back (then a new ImagingStudy version or an explicit invalidation), a deletion found by the change feed and a
 * relink are reflected at once; callers never see studies outside their patients (patient token, doctor with grants,
 * revoked grant).
 */
import dcmjs from 'dcmjs';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ehrLinker } from '../src/change-feed/ehr-linker.ts';
import { studyContentChanged } from '../src/imaging/study-links.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { dicomWith, storeInOrthanc } from './helpers/dicomweb-data.ts';
import { type Booked, bookPatientAndOrder, fhirPost, orthanc, orthancIdOf, readFhir, stowAll } from './helpers/stow.ts';

type Item = Record<string, { vr?: string; Value?: unknown[] }>;
type Who = 'admin' | 'patA' | 'patB' | 'patC' | 'patD' | 'patE' | 'doctor' | 'mrOnly';

let app: FastifyInstance;
/** The Orthanc path, chunked by one UID so that its order (by StudyInstanceUID) and pages are the index's. */
let direct: FastifyInstance;
const auth = {} as Record<Who, { authorization: string }>;
const doctor = `qido-index-doc-${Date.now().toString(36)}`;
let P1: Booked;
let P2: Booked;
let P3: Booked;
const S = {} as Record<'s1a' | 's1b' | 's2' | 's3', { uid: string; accession: string; files: Buffer[] }>;

const INSTANCES = '00201208';
const uidOf = (i: Item) => String(i['0020000D']?.Value?.[0]);

async function order(p: Booked): Promise<string> {
  const o = await fhirPost<{ identifier?: { value?: string }[] }>(app, auth.admin, {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24627-2' }] },
    subject: { reference: `Patient/${p.patientId}` },
  });
  return o.identifier?.[0]?.value ?? '';
}

/** A study of the patient: one series per modality, the given names, dates and descriptions. */
function study(p: Booked, accession: string, name: string, date: string, description: string, series: string[]) {
  const uid = newUid();
  const files = series
    .flatMap(
      (modality, n) =>
        makeSeries({ patientId: p.mrn, accession, studyUid: uid, count: n + 1, modality, seriesNumber: n + 1 }).files,
    )
    .map((f) =>
      dicomWith(f, {
        '00100010': { vr: 'PN', Value: [{ Alphabetic: name }] },
        '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
        '00080020': { vr: 'DA', Value: [date] },
        '00081030': { vr: 'LO', Value: [description] },
      }),
    );
  return { uid, accession, files };
}

/** The file without these attributes. */
function without(file: Buffer, tags: string[]): Buffer {
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
  const dicom = dcmjs.data.DicomMessage.readFile(ab);
  for (const t of tags) delete dicom.dict[t];
  return Buffer.from(dicom.write());
}

const stow = (files: Buffer[]): Promise<void> => stowAll(app, auth.admin, files);

async function qido(on: FastifyInstance, who: Who, qs: string): Promise<Item[]> {
  const res = await request(on.server)
    .get(`/dicom-web/studies${qs ? `?${qs}` : ''}`)
    .set(auth[who]);
  expect(res.status, `${qs}: ${res.text}`).toBe(200);
  return JSON.parse(res.text) as Item[];
}

/** The index's answer, checked to come from the index and to equal the Orthanc path's. */
async function fromIndex(who: Who, qs: string): Promise<Item[]> {
  const before = app.qidoStudyIndex.stats.answered;
  const got = await qido(app, who, qs);
  expect(app.qidoStudyIndex.stats.answered, `${qs} answered from the index`).toBe(before + 1);
  expect(got, `${who}: ${qs}`).toEqual(await qido(direct, who, qs));
  return got;
}

const byUid = (items: Item[]) => [...items].sort((a, b) => (uidOf(a) < uidOf(b) ? -1 : 1));
const instancesOf = (items: Item[], uid: string) => items.find((i) => uidOf(i) === uid)?.[INSTANCES]?.Value?.[0];

beforeAll(async () => {
  app = await testApp({ dicomwebAccessCacheTtlMs: 0 });
  direct = await testApp({ dicomwebAccessCacheTtlMs: 0, dicomwebQidoIndexMaxAgeMs: 0, dicomwebQidoMaxUids: 1 });
  auth.admin = bearer(await adminToken(app));
  [P1, P2, P3] = [
    await bookPatientAndOrder(app, auth.admin, { name: 'Müller^Anna' }),
    await bookPatientAndOrder(app, auth.admin, { name: 'Berg^Bob' }),
    await bookPatientAndOrder(app, auth.admin, { name: 'Cole^Cara' }),
  ];
  S.s1a = study(P1, P1.accession, 'Müller^Anna', '20190301', 'Head CT', ['CT', 'MR']);
  S.s1b = study(P1, await order(P1), 'Müller^Anna', '20210615', 'chest xray', ['CT']);
  S.s2 = study(P2, P2.accession, 'Berg^Bob', '20200110', 'Knee MR', ['MR']);
  S.s3 = study(P3, P3.accession, 'Cole^Cara', '20230909', 'Abdomen CT', ['CT', 'CT']);
  for (const s of Object.values(S)) await stow(s.files);
  const patient = async (p: Booked) =>
    bearer(
      await tokenFor(app, {
        user: { username: `pat-${p.patientId}`, roles: [] },
        scope: 'patient/*.rs',
        patient: p.patientId,
      }),
    );
  auth.patA = await patient(P1);
  auth.patB = await patient(P2);
  auth.doctor = bearer(await tokenFor(app, { user: { username: doctor, roles: ['doctor'] }, scope: 'user/*.rs' }));
  await grantPatient(app, doctor, P1.patientId);
  await grantPatient(app, doctor, P3.patientId);
  // All patients, but only MR studies (SMART v2 granular scope): answered from the index too.
  auth.mrOnly = bearer(
    await tokenFor(app, {
      user: { username: `${doctor}-mr`, roles: ['admin'] },
      scope: 'user/ImagingStudy.rs?modality=MR',
    }),
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
  await direct?.close();
});

describe('the index answers what the Orthanc path answers', () => {
  // [query, studies for patient A's token, for the doctor granted A and C]
  const table: [string, number, number][] = [
    ['', 2, 3],
    ['PatientID={mrn1}', 2, 2],
    ['PatientID={mrn1-lower}', 2, 2],
    ['PatientName=m*ller*', 2, 2],
    ['PatientName=cole^cara', 0, 1],
    ['PatientName=C?le*', 0, 1],
    ['StudyDescription=*ct*', 1, 2],
    ['StudyDescription=HEAD*', 1, 1],
    ['StudyDate=20190301', 1, 1],
    ['StudyDate=20190101-20211231', 2, 2],
    ['StudyDate=-20200101', 1, 1],
    ['StudyDate=20200101-', 1, 2],
    ['ModalitiesInStudy=MR', 1, 1],
    ['ModalitiesInStudy=ct', 2, 3],
    ['ModalitiesInStudy=C*', 2, 3],
    ['AccessionNumber={acc1a}', 1, 1],
    ['AccessionNumber={acc1a-lower}', 1, 1],
    ['AccessionNumber=*&StudyID=', 2, 3],
    ['includefield=all', 2, 3],
    ['includefield=00081030,00080061&includefield=00201208', 2, 3],
    ['PatientName=*&includefield=NameOfPhysiciansReadingStudy', 2, 3],
    ['StudyInstanceUID={s1a},{s2}', 1, 1],
    ['limit=1', 1, 1],
    ['limit=2&offset=1', 1, 2],
    ['offset=5', 0, 0],
    ['PatientID={mrn1}&ModalitiesInStudy=CT&StudyDate=20190301-&includefield=00081030', 2, 2],
  ];
  const fill = (qs: string) =>
    qs
      .replace('{mrn1}', P1.mrn)
      .replace('{mrn1-lower}', P1.mrn.toLowerCase())
      .replace('{acc1a}', S.s1a.accession)
      .replace('{acc1a-lower}', S.s1a.accession.toLowerCase())
      .replace('{s1a}', S.s1a.uid)
      .replace('{s2}', S.s2.uid);

  test.each(table)('%s', async (qs, forPatient, forDoctor) => {
    expect(await fromIndex('patA', fill(qs))).toHaveLength(forPatient);
    expect(await fromIndex('doctor', fill(qs))).toHaveLength(forDoctor);
  });

  test('every attribute of includefield=all is the one Orthanc holds, RetrieveURL included', async () => {
    const [item] = await fromIndex('patA', `StudyInstanceUID=${S.s1a.uid}&includefield=all`);
    expect(item?.['00081030']?.Value).toEqual(['Head CT']);
    expect(item?.['00080061']?.Value).toEqual(['CT', 'MR']);
    expect(String(item?.['00081190']?.Value?.[0])).toBe(`${testConfig().publicBaseUrl}/dicom-web/studies/${S.s1a.uid}`);
  });

  test.each([
    'fuzzymatching=true&PatientName=m*',
    'StudyDescription=head%20ct',
    'PatientSex=O',
    'includefield=SeriesDescription',
  ])('%s goes to Orthanc, with the same answer', async (qs) => {
    const before = app.qidoStudyIndex.stats.answered;
    // The Orthanc path without chunks answers in Orthanc's order: compared by StudyInstanceUID.
    expect(byUid(await qido(app, 'patA', qs))).toEqual(byUid(await qido(direct, 'patA', qs)));
    expect(app.qidoStudyIndex.stats.answered).toBe(before);
  });
});

test('pages follow the chunked Orthanc path, also for UIDs that prefix each other', async () => {
  const p = await bookPatientAndOrder(app, auth.admin);
  const base = newUid().slice(0, 40);
  for (const uid of [`${base}1`, base, `${base}.5`]) {
    const accession = await order(p);
    await stow(makeSeries({ patientId: p.mrn, accession, studyUid: uid, count: 1 }).files);
  }
  auth.patC = bearer(
    await tokenFor(app, {
      user: { username: `pat-${p.patientId}`, roles: [] },
      scope: 'patient/*.rs',
      patient: p.patientId,
    }),
  );
  const all = (await fromIndex('patC', '')).map(uidOf);
  expect(all).toEqual([`${base}.5`, `${base}1`, base]);
  for (const offset of [0, 1, 2]) {
    expect((await fromIndex('patC', `limit=1&offset=${offset}`)).map(uidOf)).toEqual([all[offset]]);
  }
});

test('studies with missing or empty attributes match as in Orthanc', async () => {
  const p = await bookPatientAndOrder(app, auth.admin);
  const variants: [string, Record<string, unknown> | null][] = [
    ['missing', null],
    ['empty', { '00080020': { vr: 'DA', Value: [] }, '00081030': { vr: 'LO', Value: [] } }],
    ['set', { '00080020': { vr: 'DA', Value: ['20180101'] }, '00081030': { vr: 'LO', Value: ['x'] } }],
  ];
  for (const [, attrs] of variants) {
    const accession = await order(p);
    const files = makeSeries({ patientId: p.mrn, accession, count: 1 }).files.map((f) =>
      attrs ? dicomWith(f, attrs as never) : without(f, ['00080020', '00081030', '00080030']),
    );
    await stow(files);
  }
  auth.patD = bearer(
    await tokenFor(app, {
      user: { username: `pat-${p.patientId}`, roles: [] },
      scope: 'patient/*.rs',
      patient: p.patientId,
    }),
  );
  expect(await fromIndex('patD', '')).toHaveLength(3);
  for (const qs of [
    'StudyDate=-20191231',
    'StudyDate=20170101-',
    'StudyDate=20180101',
    'StudyDescription=*',
    'StudyDescription=?*',
    'StudyDescription=X',
    'AccessionNumber=?*',
    'PatientName=?*',
    'PatientName=*',
    'AccessionNumber=*',
    'StudyDescription=',
    'StudyDate=',
    'StudyTime=',
    'ModalitiesInStudy=*',
  ]) {
    await fromIndex('patD', qs);
  }
});

describe('changes are reflected at once', () => {
  test('an instance STOWed into a study', async () => {
    const before = instancesOf(await fromIndex('patA', ''), S.s1a.uid);
    const more = makeSeries({ patientId: P1.mrn, accession: S.s1a.accession, studyUid: S.s1a.uid, count: 1 });
    await stow(more.files);
    expect(instancesOf(await fromIndex('patA', ''), S.s1a.uid)).toBe(Number(before) + 1);
  });

  test('an instance stored behind the EHR: kept until the ImagingStudy changes (another replica) or is invalidated', async () => {
    const stored = async () => instancesOf(await qido(app, 'patA', `StudyInstanceUID=${S.s1b.uid}`), S.s1b.uid);
    const before = Number(await stored());
    const extra = () =>
      dicomWith(
        makeSeries({ patientId: P1.mrn, accession: S.s1b.accession, studyUid: S.s1b.uid, count: 1 }).files[0]!,
        {
          '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller^Anna' }] },
        },
      );
    await storeInOrthanc([extra()]);
    expect(await stored()).toBe(before);
    // What a write on another replica leaves behind: a new ImagingStudy version in the database, no signal here.
    await app.db.query(sql.unsafe`
      UPDATE imaging_studies SET version_id = version_id + 1 WHERE study_instance_uid = ${S.s1b.uid}`);
    expect(await stored()).toBe(before + 1);
    await storeInOrthanc([extra()]);
    expect(await stored()).toBe(before + 1);
    studyContentChanged(S.s1b.uid);
    await app.qidoStudyIndex.settled();
    await direct.qidoStudyIndex.settled();
    expect(await stored()).toBe(before + 2);
    expect(await fromIndex('patA', `StudyInstanceUID=${S.s1b.uid}`)).toHaveLength(1);
  });

  test('a deletion found by the change feed', async () => {
    expect(await fromIndex('patB', '')).toHaveLength(1);
    const id = await orthancIdOf(S.s2.uid, 'Study');
    expect((await orthanc(`/studies/${id}`, { method: 'DELETE' })).status).toBe(200);
    // The deletion sweep's step for a study Orthanc no longer has (src/change-feed/deletions.ts).
    const linker = ehrLinker(testConfig(), app.orthanc);
    const unlinked = await app.db.transaction((tx) => linker.markDeleted(tx, String(id)));
    expect(unlinked.map((u) => u.studyInstanceUid)).toEqual([S.s2.uid]);
    expect(await fromIndex('patB', '')).toEqual([]);
  });

  test('a relink to another patient', async () => {
    const { id } = (await app.db.one(sql.unsafe`
      SELECT id FROM imaging_studies WHERE study_instance_uid = ${S.s1b.uid}`)) as { id: string };
    const current = await readFhir<Record<string, unknown>>(app, auth.admin, `ImagingStudy/${id}`);
    const res = await app.inject({
      method: 'PUT',
      url: `/fhir/ImagingStudy/${id}`,
      headers: { ...auth.admin, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify({ ...current, subject: { reference: `Patient/${P2.patientId}` } }),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect((await fromIndex('patA', '')).map(uidOf)).toEqual([S.s1a.uid]);
    expect((await fromIndex('patB', '')).map(uidOf)).toEqual([S.s1b.uid]);
  });
});

test('a study UID that moves to another ImagingStudy row at the same version number is fetched again', async () => {
  const p = await bookPatientAndOrder(app, auth.admin);
  const made = makeSeries({ patientId: p.mrn, accession: p.accession, count: 1 });
  await stow(made.files);
  auth.patE = bearer(
    await tokenFor(app, {
      user: { username: `pat-${p.patientId}`, roles: [] },
      scope: 'patient/*.rs',
      patient: p.patientId,
    }),
  );
  const count = async () => instancesOf(await fromIndex('patE', ''), made.studyUid);
  expect(await count()).toBe(1);
  const extra = makeSeries({ patientId: p.mrn, accession: p.accession, studyUid: made.studyUid, count: 1 });
  await storeInOrthanc(extra.files);
  // What a FHIR delete and re-create (or an identifier change) leaves: another row, with a version number that
  // happens to equal the old row's.
  const old = (await app.db.one(sql.unsafe`
    SELECT id, version_id, content FROM imaging_studies WHERE study_instance_uid = ${made.studyUid}`)) as {
    id: string;
    version_id: number;
    content: unknown;
  };
  await app.db.transaction(async (tx) => {
    await tx.query(sql.unsafe`
      UPDATE imaging_studies SET deleted = true, study_instance_uid = NULL WHERE id = ${old.id}`);
    await tx.query(sql.unsafe`
      INSERT INTO imaging_studies (id, version_id, last_updated, content, patient_id, study_instance_uid)
      VALUES (${`${old.id}-again`}, ${old.version_id}, now(), ${sql.jsonb(old.content as never)}, ${p.patientId},
              ${made.studyUid})`);
  });
  expect(await count()).toBe(2);
});

describe('callers see only their patients', () => {
  test("a patient token never sees another patient's study, even when it names it", async () => {
    expect(await fromIndex('patA', `StudyInstanceUID=${S.s3.uid}`)).toEqual([]);
    expect(await fromIndex('patA', `PatientID=${P3.mrn}`)).toEqual([]);
    expect((await fromIndex('patA', 'includefield=all')).map(uidOf)).toEqual([S.s1a.uid]);
  });

  test('an all-patients caller restricted to MR studies sees only those', async () => {
    const seen = (await fromIndex('mrOnly', 'includefield=all')).map(uidOf);
    expect(seen).toContain(S.s1a.uid);
    expect(seen).not.toContain(S.s3.uid);
    expect(seen).not.toContain(S.s1b.uid);
  });

  test('a revoked grant takes the patient away from the doctor', async () => {
    expect((await fromIndex('doctor', '')).map(uidOf).sort()).toEqual([S.s1a.uid, S.s3.uid].sort());
    await app.db.query(sql.unsafe`
      DELETE FROM patient_grants WHERE patient_id = ${P3.patientId}
        AND user_id = (SELECT id FROM users WHERE username = ${doctor})`);
    const deadline = Date.now() + 10_000;
    let seen = (await qido(app, 'doctor', '')).map(uidOf);
    while (seen.includes(S.s3.uid) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      seen = (await qido(app, 'doctor', '')).map(uidOf);
    }
    expect(seen).toEqual([S.s1a.uid]);
    expect(await fromIndex('doctor', `StudyInstanceUID=${S.s3.uid}`)).toEqual([]);
  });
});
