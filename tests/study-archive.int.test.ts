/**
 * Study download (`GET /api/v1/studies/{uid}/archive`) and patient logins against the real stack: a patient login
 * downloads its own study as a zip holding exactly the study's instances (and as DICOMDIR media); another patient's
 * study and an unknown one answer the same 404; every download is one AuditEvent, a DICOM Data Export with the study
 * and the patient, and a refusal names no patient. The patient login's token reaches its own record only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dcmjs from 'dcmjs';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintLocalToken } from '../src/auth/local-token.ts';
import { mintAccessToken } from '../src/auth/server/tokens.ts';
import { testApp } from './helpers/app.ts';
import { eventOf, patientsOf, studyUidsOf } from './helpers/audit.ts';
import { adminToken, bearer, ensureUser, tokenFor } from './helpers/auth.ts';
import { newUid } from './helpers/dicom.ts';
import { type Dataset, dicomWith, linkStudy, makeStudy, seedDataset, storeInOrthanc } from './helpers/dicomweb-data.ts';

let app: FastifyInstance;
let data: Dataset;
let dir: string;
const auth = {} as Record<'admin' | 'patA' | 'doctor', { authorization: string }>;

/** A patient login for A, as the web app signs in (its user/ scopes become patient/ read scopes). */
const patientA = () => ({ username: `arch-pat-${data.A.id}`, roles: ['patient' as const], patientId: data.A.id });

beforeAll(async () => {
  app = await testApp();
  data = await seedDataset(app, `arc${Date.now().toString(36)}`);
  dir = mkdtempSync(join(tmpdir(), 'study-archive-'));
  auth.admin = bearer(await adminToken(app));
  auth.patA = bearer(await tokenFor(app, { user: patientA(), scope: 'user/*.cruds user/AuditEvent.rs' }));
  auth.doctor = bearer(
    await tokenFor(app, { user: { username: `arch-doc-${data.A.id}`, roles: ['doctor'] }, scope: 'user/*.rs' }),
  );
});
afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await app?.close();
});

const binary = (res: request.Response, cb: (err: Error | null, body: Buffer) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
};

async function download(path: string, who: { authorization: string }) {
  return request(app.server).get(path).set(who).buffer(true).parse(binary);
}

/** Unzips with Debian's unzip and returns the files (relative paths) and the SOP Instance UIDs of the DICOM ones. */
function unzip(zip: Buffer, name: string): { files: string[]; sops: string[] } {
  const target = join(dir, name);
  writeFileSync(`${target}.zip`, zip);
  execFileSync('unzip', ['-q', '-o', `${target}.zip`, '-d', target]);
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p.slice(target.length + 1));
    }
  };
  walk(target);
  const sops: string[] = [];
  for (const f of files) {
    const bytes = readFileSync(join(target, f));
    if (bytes.subarray(128, 132).toString('latin1') !== 'DICM') continue;
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const sop = dcmjs.data.DicomMessage.readFile(ab).dict['00080018']?.Value?.[0];
    if (typeof sop === 'string') sops.push(sop);
  }
  return { files, sops };
}

const instancesOf = (s: Dataset['A']['studies'][number]) => s.series.flatMap((x) => x.instances).sort();

describe('own study', () => {
  test('a zip with exactly the study instances, streamed, audited as a DICOM Data Export', async () => {
    const study = data.A.studies[0]!;
    const res = await download(`/api/v1/studies/${study.uid}/archive`, auth.patA);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/zip');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="study-${study.uid}.zip"`);
    expect(res.headers['cache-control']).toBe('no-store');
    // Streamed as Orthanc writes it: no length known in advance.
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const { sops } = unzip(res.body as Buffer, 'own');
    expect(sops.sort()).toEqual(instancesOf(study));

    const e = await eventOf(app, res);
    expect(e.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110106' });
    expect(e.action).toBe('R');
    expect(e.outcome).toBe('0');
    expect(studyUidsOf(e)).toEqual([study.uid]);
    expect(patientsOf(e)).toEqual([`Patient/${data.A.id}`]);
    expect(e.agent?.find((a) => a.requestor)?.who?.reference).toBe(`Patient/${data.A.id}`);
  });

  test('format=dicomdir: DICOM media with a DICOMDIR index and the instances', async () => {
    const study = data.A.studies[1]!;
    const res = await download(`/api/v1/studies/${study.uid}/archive?format=dicomdir`, auth.patA);
    expect(res.status).toBe(200);
    expect(res.headers['content-disposition']).toContain('-dicomdir.zip');
    const { files, sops } = unzip(res.body as Buffer, 'media');
    expect(files).toContain('DICOMDIR');
    expect(sops.filter((s) => instancesOf(study).includes(s)).sort()).toEqual(instancesOf(study));
  });

  test('an admin (all patients) also gets a study the EHR has not linked', async () => {
    const res = await download(`/api/v1/studies/${data.unlinked.uid}/archive`, auth.admin);
    expect(res.status).toBe(200);
    expect(unzip(res.body as Buffer, 'unlinked').sops.sort()).toEqual(instancesOf(data.unlinked));
  });
});

describe('one UID under two of the patient identifiers', () => {
  test('one zip with the instances of both Orthanc studies, none of another patient', async () => {
    const tag = Date.now().toString(36);
    const id = `arcD-${tag}`;
    const [mrn, other] = [`MRN-D-${tag}`, `OLD-D-${tag}`];
    const first = makeStudy({ mrn, name: 'Two^Ids' }, '20240101', [2], 'two ids');
    const second = makeStudy({ mrn: other, name: 'Two^Ids' }, '20240101', [1], 'two ids');
    const moved = second.files.map((f) => dicomWith(f, { '0020000D': { vr: 'UI', Value: [first.study.uid] } }));
    // A third patient's study under the same UID: never in D's archive.
    const foreign = makeStudy({ mrn: `MRN-X-${tag}`, name: 'Other^X' }, '20240101', [1], 'foreign');
    const foreignFiles = foreign.files.map((f) => dicomWith(f, { '0020000D': { vr: 'UI', Value: [first.study.uid] } }));
    await storeInOrthanc([...first.files, ...moved, ...foreignFiles]);
    const content = {
      resourceType: 'Patient',
      id,
      identifier: [
        { system: 'urn:mrn', value: mrn },
        { system: 'urn:old-mrn', value: other },
      ],
    };
    await app.db.query(sql.unsafe`
      INSERT INTO patients (id, version_id, last_updated, content, mrn)
      VALUES (${id}, 1, now(), ${sql.jsonb(content)}, ${mrn})`);
    await linkStudy(app, id, first.study);
    const token = await tokenFor(app, {
      user: { username: `arch-pat-${id}`, roles: ['patient'], patientId: id },
      scope: 'user/*.rs',
    });
    const res = await download(`/api/v1/studies/${first.study.uid}/archive`, bearer(token));
    expect(res.status).toBe(200);
    const expected = [...instancesOf(first.study), ...instancesOf(second.study)].sort();
    expect(unzip(res.body as Buffer, 'two-ids').sops.sort()).toEqual(expected);
  });
});

describe('refusals', () => {
  test("another patient's study and an unknown one: the same 404, audited without patient", async () => {
    const other = await request(app.server).get(`/api/v1/studies/${data.B.studies[0]!.uid}/archive`).set(auth.patA);
    const unknown = await request(app.server).get(`/api/v1/studies/${newUid()}/archive`).set(auth.patA);
    expect(other.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(other.body.error).toBe(unknown.body.error);
    const e = await eventOf(app, other);
    expect(e.type?.code).toBe('110106');
    expect(e.outcome).toBe('4');
    expect(studyUidsOf(e)).toEqual([data.B.studies[0]!.uid]);
    expect(patientsOf(e)).toEqual([]);
  });

  test("a doctor without a grant gets 404 for A's study", async () => {
    const res = await request(app.server).get(`/api/v1/studies/${data.A.studies[0]!.uid}/archive`).set(auth.doctor);
    expect(res.status).toBe(404);
  });

  test.each([
    ['not a UID', '/api/v1/studies/1.2.abc/archive', 400],
    ['unknown parameter', '/api/v1/studies/1.2.3/archive?x=1', 400],
    ['unknown format', '/api/v1/studies/1.2.3/archive?format=tar', 400],
  ])('%s → %s', async (_name, path, status) => {
    const res = await request(app.server).get(path).set(auth.patA);
    expect(res.status).toBe(status);
    expect(res.body.error).toBeTruthy();
  });

  test('without a token: 401', async () => {
    const res = await request(app.server).get(`/api/v1/studies/${data.A.studies[0]!.uid}/archive`);
    expect(res.status).toBe(401);
  });
});

describe('a patient login', () => {
  test('its token carries its own Patient and read-only patient/ scopes', async () => {
    const me = await request(app.server).get('/api/v1/me').set(auth.patA);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ kind: 'patient', roles: ['patient'], patient: data.A.id });
    expect(me.body.fhirUser).toBe(`Patient/${data.A.id}`);
    expect(me.body.scopes).toEqual(['patient/*.rs', 'patient/AuditEvent.rs']);
  });

  test('reads its own record, never another patient, never writes', async () => {
    // (The seeded Patient rows are plain SQL; the ImagingStudy rows carry their patient like FHIR-written ones.)
    const list = await request(app.server).get('/fhir/ImagingStudy').set(auth.patA);
    expect(list.status).toBe(200);
    const subjects = new Set(
      list.body.entry.map((x: { resource: { subject: { reference: string } } }) => x.resource.subject.reference),
    );
    expect([...subjects]).toEqual([`Patient/${data.A.id}`]);
    const otherId = `is-${data.B.studies[0]!.uid.slice(-20)}`;
    const other = await request(app.server).get(`/fhir/ImagingStudy/${otherId}`).set(auth.patA);
    expect(other.status).toBe(404);
    const mine = await request(app.server)
      .get(`/fhir/ImagingStudy/is-${data.A.studies[0]!.uid.slice(-20)}`)
      .set(auth.patA);
    expect(mine.status).toBe(200);
    const studies = await request(app.server)
      .get(`/dicom-web/studies?StudyInstanceUID=${data.B.studies[0]!.uid}`)
      .set(auth.patA)
      .set('accept', 'application/dicom+json');
    expect([200, 204]).toContain(studies.status);
    expect(studies.status === 204 ? [] : studies.body).toEqual([]);
    const write = await request(app.server)
      .put(`/fhir/Patient/${data.A.id}`)
      .set(auth.patA)
      .set('content-type', 'application/fhir+json')
      .send({ resourceType: 'Patient', id: data.A.id });
    expect(write.status).toBe(403);
  });

  test('sees the AuditEvents about itself, redacted', async () => {
    const res = await request(app.server).get(`/fhir/AuditEvent?patient=Patient/${data.A.id}`).set(auth.patA);
    expect(res.status).toBe(200);
    expect(res.body.total ?? res.body.entry?.length).toBeGreaterThan(0);
    const other = await request(app.server).get(`/fhir/AuditEvent?patient=Patient/${data.B.id}`).set(auth.patA);
    expect(other.body.entry ?? []).toEqual([]);
  });

  test('no token for another patient can be minted for it', async () => {
    await ensureUser(app, patientA());
    await expect(
      mintLocalToken(app.db, app.authMint, { username: patientA().username, scope: 'user/*.rs', patient: data.B.id }),
    ).rejects.toThrow(/patient login/);
  });

  test('a patient login token naming another patient is refused', async () => {
    // Signed like a real token but with B as the context: the policy bounds a patient login to its own Patient.
    const user = await ensureUser(app, patientA());
    const token = await mintAccessToken(app.authMint, {
      sub: user,
      clientId: 'ehr-web',
      scope: 'patient/*.rs',
      patient: data.B.id,
    });
    const res = await request(app.server).get(`/fhir/Patient/${data.B.id}`).set(bearer(token.token));
    expect(res.status).toBe(401);
  });
});
