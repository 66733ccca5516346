/**
 * One StudyInstanceUID, several Orthanc studies: Orthanc identifies a study by PatientID + StudyInstanceUID
 * (https://orthanc.uclouvain.be/book/faq/orthanc-ids.html), so instances that arrive with a linked study's UID but
 * another PatientID (a C-STORE under another MRN, a held STOW-RS) form another Orthanc study under the same UID. A
 * caller allowed to see patient A's study X must get exactly the Orthanc study of X that the EHR links to A (PatientID
 * = A's MRN) from every QIDO-RS level, every path (study index, one Orthanc query, chunked), the series cache and
 * every WADO-RS / WADO-URI retrieval; nothing of the other Orthanc studies with UID X.
 *
 * The foreign instances are POSTed straight to Orthanc's REST API with the stack's credentials, as a modality's
 * C-STORE would store them, behind the EHR's back:
 * - X0 (A's first study): a new series under an unknown PatientID, and one under A's MRN in lower case (Orthanc
 *   matches PatientID case-insensitively, the EHR's MRNs are exact);
 * - X1 (A's second study): a new series under B's MRN, and one instance under C's MRN inside A's own series UID;
 * - Y: a UID linked to A in the EHR of which Orthanc holds only a foreign study.
 * An all-patients admin sees them all through the facade (so the data is there and reachable).
 *
 * Those links are plain ImagingStudy rows (no recorded Orthanc study: the patient's identifiers decide). A study
 * linked through STOW-RS has its Orthanc study recorded; it is checked the same way, and after it was moved to another
 * patient through the FHIR API (the recorded Orthanc study, still under the first patient's MRN, moves with it; an
 * Orthanc study under the new patient's MRN with the same UID does not).
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid, pydicomFile } from './helpers/dicom.ts';
import {
  type Dataset,
  dicomWith,
  first,
  instanceUids,
  linkStudy,
  seedDataset,
  seriesUids,
  storeInOrthanc,
  studyUids,
} from './helpers/dicomweb-data.ts';
import { type Booked, bookPatientAndOrder, readFhir, stowAll } from './helpers/stow.ts';

type Item = Record<string, { Value?: unknown[] }>;
type Who = 'patA' | 'docAC' | 'admin';

/** The facade with its defaults (study index, series cache), the plain Orthanc path, and the chunked Orthanc path. */
const apps = {} as Record<'indexed' | 'direct' | 'chunked', FastifyInstance>;
const auth = {} as Record<Who, { authorization: string }>;
let data: Dataset;
const FOREIGN_NAME = 'Foreign^Fred';

interface Foreign {
  study: string;
  series: string;
  instance: string;
  patientId: string;
}
const foreign = {} as Record<'unknown' | 'lower' | 'mrnB' | 'inASeries' | 'onlyForeign', Foreign>;
/** The UID linked to A of which Orthanc holds only the foreign study. */
let Y: string;

function foreignInstance(f: Foreign): Buffer {
  return dicomWith(pydicomFile('CT_small.dcm'), {
    '00100020': { vr: 'LO', Value: [f.patientId] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: FOREIGN_NAME }] },
    '00081030': { vr: 'LO', Value: ['foreign study'] },
    '0020000D': { vr: 'UI', Value: [f.study] },
    '0020000E': { vr: 'UI', Value: [f.series] },
    '00080018': { vr: 'UI', Value: [f.instance] },
  });
}

beforeAll(async () => {
  apps.indexed = await testApp();
  apps.direct = await testApp({ dicomwebQidoIndexMaxAgeMs: 0 });
  apps.chunked = await testApp({ dicomwebQidoIndexMaxAgeMs: 0, dicomwebQidoMaxUids: 1 });
  const tag = `suid${Date.now().toString(36)}`;
  data = await seedDataset(apps.indexed, tag);
  const [x0, x1] = data.A.studies;
  if (!x0 || !x1) throw new Error('seedDataset gave A two studies');
  Y = newUid();
  await linkStudy(apps.indexed, data.A.id, { uid: Y, date: '20240101', series: [] });
  const fresh = (study: string, patientId: string): Foreign => ({
    study,
    series: newUid(),
    instance: newUid(),
    patientId,
  });
  foreign.unknown = fresh(x0.uid, `FOREIGN-${tag}`);
  foreign.lower = fresh(x0.uid, data.A.mrn.toLowerCase());
  foreign.mrnB = fresh(x1.uid, data.B.mrn);
  foreign.inASeries = { ...fresh(x1.uid, data.C.mrn), series: x1.series[0]!.uid };
  foreign.onlyForeign = fresh(Y, `FOREIGN-${tag}`);
  await storeInOrthanc(Object.values(foreign).map(foreignInstance));

  auth.admin = bearer(await adminToken(apps.indexed));
  auth.patA = bearer(
    await tokenFor(apps.indexed, {
      user: { username: `pat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
  const doctor = `doc-${data.A.id}`;
  auth.docAC = bearer(
    await tokenFor(apps.indexed, { user: { username: doctor, roles: ['doctor'] }, scope: 'user/*.rs' }),
  );
  await grantPatient(apps.indexed, doctor, data.A.id);
  await grantPatient(apps.indexed, doctor, data.C.id);
});

afterAll(async () => {
  for (const app of Object.values(apps)) await app?.close();
});

async function get(app: FastifyInstance, path: string, who: Who, accept?: string) {
  const req = request(app.server).get(`/dicom-web${path}`).set(auth[who]);
  if (accept) req.set('accept', accept);
  return req.buffer(true).parse((res, done) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => done(null, Buffer.concat(chunks)));
  });
}

async function qido(app: FastifyInstance, path: string, who: Who): Promise<Item[]> {
  const res = await get(app, path, who);
  expect(res.status, `${path}: ${String(res.body)}`).toBe(200);
  return JSON.parse(String(res.body)) as Item[];
}

const values = (items: Item[], tag: string) => items.map((i) => String(first(i, tag))).sort();
/** The UIDs only foreign studies have (the instance put into A's series has A's series UID). */
const foreignUids = () =>
  Object.values(foreign).flatMap((f) => (f === foreign.inASeries ? [f.instance] : [f.series, f.instance]));

/** The linked study UIDs a caller may see, with the MRN of their patient (the PatientID of their Orthanc study). */
function allowed(who: Who): Map<string, string> {
  const out = new Map<string, string>([...studyUids(data.A), Y].map((uid) => [uid, data.A.mrn]));
  if (who === 'docAC') for (const uid of studyUids(data.C)) out.set(uid, data.C.mrn);
  return out;
}

/**
 * Nothing of a foreign Orthanc study: each answer belongs to a study the caller may see and carries its linked
 * patient's MRN when it carries a PatientID; no foreign name, series or instance anywhere.
 */
function expectOnlyLinked(items: Item[], who: Who, label: string): void {
  const mine = allowed(who);
  for (const i of items) {
    const uid = String(first(i, '0020000D'));
    expect(mine.has(uid), `${label}: study ${uid}`).toBe(true);
    if (i['00100020'] !== undefined) expect(first(i, '00100020'), label).toBe(mine.get(uid));
    const text = JSON.stringify(i);
    expect(text, label).not.toContain(FOREIGN_NAME);
    for (const f of foreignUids()) expect(text, label).not.toContain(f);
  }
}

describe('the foreign Orthanc studies are there: an all-patients admin sees them through the facade', () => {
  test('QIDO and WADO-RS as admin', async () => {
    const x0 = data.A.studies[0]!.uid;
    const studies = await qido(apps.direct, `/studies?StudyInstanceUID=${x0}`, 'admin');
    expect(values(studies, '00100020')).toEqual(
      [data.A.mrn, foreign.lower.patientId, foreign.unknown.patientId].sort(),
    );
    const f = foreign.unknown;
    const meta = await get(apps.direct, `/studies/${f.study}/series/${f.series}/metadata`, 'admin');
    expect(meta.status).toBe(200);
    expect(String(meta.body)).toContain(FOREIGN_NAME);
  });
});

describe.each([
  ['patient A', 'patA'],
  ['a doctor granted A and C', 'docAC'],
] as const)('%s never sees the other Orthanc studies sharing A’s study UIDs', (_label, who) => {
  const A = () => data.A;

  test.each(['indexed', 'direct', 'chunked'] as const)(
    'study level (%s): exactly A’s studies, once each',
    async (mode) => {
      const app = apps[mode];
      const x0 = A().studies[0]!.uid;
      const x1 = A().studies[1]!.uid;
      for (const path of [
        '/studies',
        '/studies?includefield=all',
        `/studies?StudyInstanceUID=${x0},${x1},${Y}`,
        `/studies?StudyInstanceUID=${x0}`,
        '/studies?PatientName=*',
        `/studies?PatientID=${foreign.unknown.patientId}`,
        `/studies?PatientID=${A().mrn}`,
      ]) {
        const items = await qido(app, path, who);
        expectOnlyLinked(items, who, path);
        const visible = values(items, '0020000D');
        expect(new Set(visible).size, path).toBe(visible.length);
      }
      const all = await qido(app, '/studies', who);
      const expected = who === 'docAC' ? studyUids(A(), data.C) : studyUids(A());
      expect(values(all, '0020000D'), 'every study the caller may see, none twice').toEqual(expected.sort());
    },
  );

  test.each(['direct', 'chunked'] as const)('series level (%s): exactly A’s series', async (mode) => {
    const app = apps[mode];
    const [x0, x1] = A().studies as [Dataset['A']['studies'][0], Dataset['A']['studies'][0]];
    const cases: [string, string[]][] = [
      [`/studies/${x0.uid}/series`, x0.series.map((s) => s.uid)],
      [`/studies/${x1.uid}/series`, x1.series.map((s) => s.uid)],
      [`/studies/${x1.uid}/series?includefield=all`, x1.series.map((s) => s.uid)],
      [`/series?StudyInstanceUID=${x0.uid}`, x0.series.map((s) => s.uid)],
      [`/series?SeriesInstanceUID=${foreign.unknown.series}`, []],
      [`/series?SeriesInstanceUID=${foreign.mrnB.series}`, []],
      [`/studies/${Y}/series`, []],
    ];
    for (const [path, expected] of cases) {
      const items = await qido(app, path, who);
      expectOnlyLinked(items, who, path);
      expect(values(items, '0020000E'), path).toEqual([...expected].sort());
    }
    const top = await qido(app, '/series', who);
    expectOnlyLinked(top, who, '/series');
    expect(values(top, '0020000E')).toEqual(expect.arrayContaining(seriesUids(A())));
  });

  test.each(['direct', 'chunked'] as const)('instance level (%s): exactly A’s instances', async (mode) => {
    const app = apps[mode];
    const [x0, x1] = A().studies as [Dataset['A']['studies'][0], Dataset['A']['studies'][0]];
    const s1 = x1.series[0]!;
    const cases: [string, string[]][] = [
      // The default instance QIDO of a series goes through the series cache: asked twice (miss, then hit).
      [`/studies/${x1.uid}/series/${s1.uid}/instances`, s1.instances],
      [`/studies/${x1.uid}/series/${s1.uid}/instances`, s1.instances],
      [`/studies/${x1.uid}/series/${s1.uid}/instances?includefield=all`, s1.instances],
      [`/studies/${x0.uid}/instances`, x0.series.flatMap((s) => s.instances)],
      [`/instances?StudyInstanceUID=${x1.uid}`, x1.series.flatMap((s) => s.instances)],
      [`/studies/${x0.uid}/series/${foreign.unknown.series}/instances`, []],
      [`/studies/${x0.uid}/series/${foreign.lower.series}/instances`, []],
      [`/instances?SOPInstanceUID=${foreign.inASeries.instance}`, []],
      [`/studies/${Y}/instances`, []],
    ];
    for (const [path, expected] of cases) {
      const items = await qido(app, path, who);
      expectOnlyLinked(items, who, path);
      expect(values(items, '00080018'), path).toEqual([...expected].sort());
    }
    const top = await qido(app, '/instances?limit=1000', who);
    expectOnlyLinked(top, who, '/instances');
    expect(values(top, '00080018')).toEqual(expect.arrayContaining(instanceUids(A())));
  });

  test('Orthanc’s compressed answer is passed on when nothing was withheld, a filtered one is identity', async () => {
    const [x0, x1] = A().studies as [Dataset['A']['studies'][0], Dataset['A']['studies'][0]];
    for (const [study, coded] of [
      // X0: Orthanc matches A's MRN also in lower case; that foreign series is withheld from its answer.
      [x0, false],
      // X1: the foreign studies have other PatientIDs, which the query's PatientID key already excludes.
      [x1, true],
    ] as const) {
      const res = await request(apps.direct.server)
        .get(`/dicom-web/studies/${study.uid}/series`)
        .set(auth[who])
        .set('accept-encoding', 'gzip');
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding'], study.uid).toBe(coded ? 'gzip' : undefined);
      expect(res.headers['vary']).toBe('Accept-Encoding');
      expect(values(JSON.parse(res.text) as Item[], '0020000E')).toEqual(study.series.map((s) => s.uid).sort());
    }
  });

  test('WADO-RS and WADO-URI of a foreign series or instance: the uniform 404', async () => {
    const app = apps.indexed;
    const paths: [string, string | undefined][] = [];
    for (const f of Object.values(foreign)) {
      const series = `/studies/${f.study}/series/${f.series}`;
      const instance = `${series}/instances/${f.instance}`;
      paths.push(
        [`${series}/metadata`, undefined],
        [series, 'multipart/related; type="application/dicom"'],
        [`${instance}/metadata`, undefined],
        [instance, 'multipart/related; type="application/dicom"'],
        [`${instance}/frames/1`, 'multipart/related; type="application/octet-stream"'],
        [`${instance}/rendered`, 'image/jpeg'],
        [`/wado?requestType=WADO&studyUID=${f.study}&seriesUID=${f.series}&objectUID=${f.instance}`, undefined],
      );
    }
    paths.push([`/studies/${Y}/metadata`, undefined], [`/studies/${Y}`, 'multipart/related; type="application/dicom"']);
    for (const [path, accept] of paths) {
      const res = await get(app, path, who, accept);
      expect(res.status, path).toBe(404);
      expect(String(res.body), path).not.toContain(FOREIGN_NAME);
    }
  });

  test('A’s own series and instances stay retrievable next to the foreign ones', async () => {
    const app = apps.indexed;
    const x0 = A().studies[0]!;
    const s = x0.series[0]!;
    const meta = await get(app, `/studies/${x0.uid}/series/${s.uid}/metadata`, who);
    expect(meta.status).toBe(200);
    const items = JSON.parse(String(meta.body)) as Item[];
    expect(values(items, '00080018')).toEqual([...s.instances].sort());
    expectOnlyLinked(items, who, 'series metadata');
    const inst = `/studies/${x0.uid}/series/${s.uid}/instances/${s.instances[0]}`;
    expect((await get(app, `${inst}/frames/1`, who, 'multipart/related; type="application/octet-stream"')).status).toBe(
      200,
    );
    expect((await get(app, `${inst}/metadata`, who)).status).toBe(200);
    // (Study-level retrievals and WADO-URI of X0 are Orthanc's 404 for everyone now: DICOMweb 1.7 looks the study
    // UID up and refuses an ambiguous one.)
  });
});

describe('a study linked through STOW-RS, then moved to another patient through the FHIR API', () => {
  let P: Booked;
  let Q: Booked;
  let stowed: ReturnType<typeof makeSeries>;
  const intruders = {} as Record<'unknown' | 'mrnQ', Foreign>;
  const tokens = {} as Record<'P' | 'Q', { authorization: string }>;
  const patientToken = async (id: string) =>
    bearer(
      await tokenFor(apps.indexed, { user: { username: `pat-${id}`, roles: [] }, scope: 'patient/*.rs', patient: id }),
    );

  beforeAll(async () => {
    P = await bookPatientAndOrder(apps.indexed, auth.admin);
    Q = await bookPatientAndOrder(apps.indexed, auth.admin);
    stowed = makeSeries({ patientId: P.mrn, accession: P.accession, count: 2 });
    await stowAll(apps.indexed, auth.admin, stowed.files);
    const fresh = (patientId: string): Foreign => ({
      study: stowed.studyUid,
      series: newUid(),
      instance: newUid(),
      patientId,
    });
    intruders.unknown = fresh(`FOREIGN-${P.mrn}`);
    intruders.mrnQ = fresh(Q.mrn);
    await storeInOrthanc(Object.values(intruders).map(foreignInstance));
    tokens.P = await patientToken(P.patientId);
    tokens.Q = await patientToken(Q.patientId);
  });

  async function as(app: FastifyInstance, path: string, token: { authorization: string }, accept?: string) {
    const req = request(app.server).get(`/dicom-web${path}`).set(token);
    if (accept) req.set('accept', accept);
    return req;
  }

  /** What `token` gets of the stowed study: its study answers (PatientIDs), series, instances and WADO statuses. */
  async function view(token: { authorization: string }) {
    const X = stowed.studyUid;
    const out: Record<string, unknown> = {};
    for (const mode of ['indexed', 'direct', 'chunked'] as const) {
      const studies = await as(apps[mode], `/studies?StudyInstanceUID=${X}`, token);
      out[`studies ${mode}`] = (JSON.parse(studies.text) as Item[]).map((i) => first(i, '00100020'));
    }
    const series = await as(apps.direct, `/studies/${X}/series`, token);
    out['series'] = values(JSON.parse(series.text) as Item[], '0020000E');
    const instances = await as(apps.indexed, `/studies/${X}/series/${stowed.seriesUid}/instances`, token);
    out['instances'] = values(JSON.parse(instances.text) as Item[], '00080018');
    out['own metadata'] = (await as(apps.indexed, `/studies/${X}/series/${stowed.seriesUid}/metadata`, token)).status;
    for (const [name, f] of Object.entries(intruders)) {
      const meta = await as(apps.indexed, `/studies/${X}/series/${f.series}/metadata`, token);
      const frames = `/studies/${X}/series/${f.series}/instances/${f.instance}/frames/1`;
      const frame = await as(apps.indexed, frames, token, 'multipart/related; type="application/octet-stream"');
      out[`${name} series`] = [meta.status, frame.status];
    }
    return out;
  }

  const linkedView = (patientId: string) => ({
    'studies indexed': [patientId],
    'studies direct': [patientId],
    'studies chunked': [patientId],
    series: [stowed.seriesUid],
    instances: [...stowed.sopUids].sort(),
    'own metadata': 200,
    'unknown series': [404, 404],
    'mrnQ series': [404, 404],
  });
  const nothing = {
    'studies indexed': [],
    'studies direct': [],
    'studies chunked': [],
    series: [],
    instances: [],
    'own metadata': 404,
    'unknown series': [404, 404],
    'mrnQ series': [404, 404],
  };

  test('the patient it was stored for sees exactly the recorded Orthanc study', async () => {
    expect(await view(tokens.P)).toEqual(linkedView(P.mrn));
    expect(await view(tokens.Q)).toEqual(nothing);
  });

  test('moved to Q: Q sees the recorded Orthanc study (still under P’s MRN), not the one under its own MRN', async () => {
    const bundle = await readFhir<{ entry?: { resource: Record<string, unknown> }[] }>(
      apps.indexed,
      auth.admin,
      `ImagingStudy?identifier=urn:dicom:uid|urn:oid:${stowed.studyUid}`,
    );
    const study = bundle.entry?.[0]?.resource;
    if (!study) throw new Error('the STOW-RS did not create an ImagingStudy');
    const put = await request(apps.indexed.server)
      .put(`/fhir/ImagingStudy/${String(study['id'])}`)
      .set(auth.admin)
      .set('content-type', 'application/fhir+json')
      .send(JSON.stringify({ ...study, subject: { reference: `Patient/${Q.patientId}` } }));
    expect(put.status, put.text).toBe(200);
    expect(await view(tokens.Q)).toEqual(linkedView(P.mrn));
    expect(await view(tokens.P)).toEqual(nothing);
  });
});
