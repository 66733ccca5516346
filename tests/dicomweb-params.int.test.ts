/**
 * Query parameters on the real stack: every parameter that reaches Orthanc is checked per route first
 * (src/dicomweb/wado/query-rules.ts). A rendered or thumbnail request with a huge viewport used to make Orthanc 1.10.1
 * allocate the whole image and die (segfault), for any reader's token; now it is a 400 with an ErrorComment and
 * Orthanc stays up. Also: private tags in QIDO reach Orthanc, unknown keywords and malformed values are 400.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { bearer, tokenFor } from './helpers/auth.ts';
import {
  type Dataset,
  dicomWith,
  first,
  linkStudy,
  makeStudy,
  seedDataset,
  type StudyData,
  storeInOrthanc,
} from './helpers/dicomweb-data.ts';
import { orthanc } from './helpers/stow.ts';

let app: FastifyInstance;
let data: Dataset;
let patA: { authorization: string };
/** A study of A whose instance carries a private attribute (0009,1001) under creator (0009,0010). */
let privateStudy: StudyData;

beforeAll(async () => {
  app = await testApp();
  data = await seedDataset(app, `prm${Date.now().toString(36)}`);
  patA = bearer(
    await tokenFor(app, {
      user: { username: `pat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
  const made = makeStudy(data.A, '20240101', [1], 'private tag study');
  const files = made.files.map((f) =>
    dicomWith(f, { '00090010': { vr: 'LO', Value: ['EHR TEST'] }, '00091001': { vr: 'LO', Value: ['secret-ish'] } }),
  );
  await storeInOrthanc(files);
  await linkStudy(app, data.A.id, made.study);
  privateStudy = made.study;
});

afterAll(async () => {
  await app?.close();
});

/** A's first instance, as WADO-RS paths. */
function paths() {
  const s = data.A.studies[0];
  const se = s?.series[0];
  const instance = `/studies/${s?.uid}/series/${se?.uid}/instances/${se?.instances[0]}`;
  return { study: `/studies/${s?.uid}`, series: `/studies/${s?.uid}/series/${se?.uid}`, instance };
}

async function orthancUp(): Promise<boolean> {
  try {
    const res = await orthanc('/system', { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

async function expectRefused(path: string, reason: RegExp, accept?: string): Promise<void> {
  const req = request(app.server).get(`/dicom-web${path}`).set(patA);
  if (accept) req.set('accept', accept);
  const res = await req;
  expect(res.status, `${path}: ${res.text}`).toBe(400);
  expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
  const comment = String(first(JSON.parse(res.text) as Record<string, { Value?: unknown[] }>, '00000902'));
  expect(comment).toMatch(reason);
}

describe('a huge viewport does not take the image archive down', () => {
  test.each([['rendered'], ['thumbnail']])(
    '%s?viewport=100000,100000 (patient token): 400 with an ErrorComment, Orthanc still up',
    async (kind) => {
      expect(await orthancUp()).toBe(true);
      await expectRefused(`${paths().instance}/${kind}?viewport=100000,100000`, /viewport/, 'image/jpeg');
      expect(await orthancUp()).toBe(true);
      // And the archive still renders afterwards.
      const ok = await request(app.server)
        .get(`/dicom-web${paths().instance}/${kind}?viewport=64,64`)
        .set(patA)
        .set('accept', 'image/jpeg')
        .buffer(true);
      expect(ok.status).toBe(200);
      expect(ok.headers['content-type']).toMatch(/^image\/jpeg/);
    },
  );
});

describe('rendered and thumbnail parameters', () => {
  test.each([
    ['rendered?quality=0', /quality/],
    ['rendered?quality=101', /quality/],
    ['rendered?viewport=0,10', /viewport/],
    ['rendered?viewport=10', /viewport/],
    ['rendered?window=abc', /window/],
    ['rendered?window=40,400,cubic', /window/],
    ['rendered?foo=1', /Unsupported query parameter "foo"/],
    ['thumbnail?quality=80', /Unsupported query parameter "quality"/],
    ['frames/1/rendered?viewport=5000,5000', /viewport/],
  ])('%s: 400', async (tail, reason) => {
    await expectRefused(`${paths().instance}/${tail}`, reason);
  });

  test('a valid rendered request: 200 JPEG', async () => {
    const res = await request(app.server)
      .get(`/dicom-web${paths().instance}/rendered?viewport=96,96&quality=80&window=40,400,linear&annotation=patient`)
      .set(patA)
      .set('accept', 'image/jpeg')
      .buffer(true);
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^image\/jpeg/);
  });

  test('the accept query parameter chooses the media type (PS3.18 §8.3.3.1)', async () => {
    const res = await request(app.server)
      .get(`/dicom-web${paths().instance}/rendered?accept=image/png`)
      .set(patA)
      .buffer(true);
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^image\/png/);
  });
});

describe('other WADO routes: only their own parameters', () => {
  test.each([
    ['study', '?foo=1'],
    ['series', '/metadata?viewport=1,1'],
    ['instance', '?quality=5'],
    ['instance', '/frames/1?charset=utf-8'],
    ['instance', '/bulk/7fe00010?x=1'],
  ] as const)('%s%s: 400', async (level, tail) => {
    await expectRefused(`${paths()[level]}${tail}`, /Unsupported query parameter/);
  });

  test('metadata with charset and accept query parameters: 200', async () => {
    const res = await request(app.server)
      .get(`/dicom-web${paths().series}/metadata?charset=utf-8&accept=application/dicom%2Bjson`)
      .set(patA);
    expect(res.status, res.text).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
  });

  test('WADO-URI: unknown and malformed parameters 400, anonymize refused, a valid request 200', async () => {
    const s = data.A.studies[0];
    const se = s?.series[0];
    const base = `/wado?requestType=WADO&studyUID=${s?.uid}&seriesUID=${se?.uid}&objectUID=${se?.instances[0]}`;
    await expectRefused(`${base}&bogus=1`, /Unsupported query parameter "bogus"/);
    await expectRefused(`${base}&rows=0`, /rows/);
    await expectRefused(`${base}&contentType=text%2Fhtml`, /contentType/);
    await expectRefused(`${base}&anonymize=yes`, /anonymize/);
    const res = await request(app.server).get(`/dicom-web${base}&contentType=image%2Fjpeg`).set(patA).buffer(true);
    expect(res.status, res.text).toBe(200);
    // (Orthanc's WADO-URI labels its JPEG rendering image/png; the facade relays its answer unchanged.)
    expect(res.headers['content-type']).toMatch(/^image\//);
  });
});

describe('QIDO-RS keys', () => {
  test.each([
    ['/studies?includefield=00091001'],
    ['/studies?includefield=00091001,00100010&limit=5'],
    ['/instances?00091001=abc'],
    ['/studies?includefield=all'],
  ])('%s (private tag or all): reaches Orthanc, 200', async (path) => {
    const res = await request(app.server).get(`/dicom-web${path}`).set(patA);
    expect(res.status, res.text).toBe(200);
    expect(Array.isArray(JSON.parse(res.text))).toBe(true);
  });

  test('includefield=00091001 on a file that has it: 200, the attribute as Orthanc answers it directly', async () => {
    // Orthanc 1.10 (DICOMweb plugin 1.7) accepts the private tag but leaves it out of its QIDO answers; the facade
    // passes the query on and relays that answer as it is.
    const se = privateStudy.series[0];
    const path = `/studies/${privateStudy.uid}/series/${se?.uid}/instances?includefield=00091001`;
    const res = await request(app.server).get(`/dicom-web${path}`).set(patA);
    expect(res.status, res.text).toBe(200);
    const direct = await orthanc(`/dicom-web${path}`);
    expect(direct.status).toBe(200);
    type Items = Array<Record<string, unknown>>;
    const mine = JSON.parse(res.text) as Items;
    const theirs = (await direct.json()) as Items;
    expect(mine).toHaveLength(1);
    expect(mine[0]?.['00091001']).toEqual(theirs[0]?.['00091001']);
  });

  test.each([
    ['/studies?NoSuchKeyword=1', /Unsupported query parameter "NoSuchKeyword"/],
    ['/studies?includefield=NoSuchKeyword', /includefield/],
    ['/studies?limit=abc', /limit/],
    ['/studies?offset=-1', /offset/],
  ])('%s: 400', async (path, reason) => {
    await expectRefused(path, reason);
  });
});
