/**
 * DICOMweb through the facade as real clients use it: OHIF's exact request sequence, the npm
 * `dicomweb-client`, public RetrieveURL/BulkDataURI, CORS, bad input, a client disconnecting mid-retrieval, and
 * Orthanc down or silent. Real Orthanc and PostgreSQL; real tokens.
 */
import { createServer, type Server } from 'node:net';
import { request as httpRequest } from 'node:http';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { freePort } from '../src/stack/process.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';
import { newUid, pydicomFile } from './helpers/dicom.ts';
import {
  type Dataset,
  dicomWith,
  first,
  linkStudy,
  makeStudy,
  seedDataset,
  storeInOrthanc,
  studyUids,
} from './helpers/dicomweb-data.ts';

const ORIGIN = 'http://viewer.example.test';
let app: FastifyInstance;
let base: string;
let data: Dataset;
let admin: { authorization: string };
let doctor: { authorization: string };
type Item = Record<string, { Value?: unknown[]; BulkDataURI?: string }>;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await testApp({ publicBaseUrl: base, dicomwebCorsOrigins: ORIGIN });
  await app.listen({ host: '127.0.0.1', port });
  data = await seedDataset(app, `cli${Date.now().toString(36)}`);
  admin = bearer(await adminToken(app));
  const username = `doc-${data.A.id}`;
  doctor = bearer(await tokenFor(app, { user: { username, roles: ['doctor'] }, scope: 'user/*.rs' }));
  await grantPatient(app, username, data.A.id);
  await grantPatient(app, username, data.C.id);
});

afterAll(async () => {
  await app?.close();
});

describe("OHIF 3.13's exact request sequence", () => {
  test('study list, series list, series metadata, frames with transfer-syntax=*', async () => {
    const fragment = data.A.mrn.slice(2, 9);
    const includes = '00081030%2C00080060%2C00080020%2C00100010%2C00100020%2C00080061%2C00201208%2C00201206';
    const list = await request(app.server)
      .get(`/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=${includes}&00100020=*${fragment}*`)
      .set(doctor)
      .set('accept', 'application/dicom+json');
    expect(list.status).toBe(200);
    const studies = JSON.parse(list.text) as Item[];
    expect(studies.map((s) => first(s, '0020000D')).sort()).toEqual(studyUids(data.A).sort());
    for (const s of studies) {
      expect(String(first(s, '00081030'))).toMatch(/^A study/); // StudyDescription: only there because it was included
      expect(first(s, '00100020')).toBe(data.A.mrn);
    }
    const study = data.A.studies[0];
    const seriesRes = await request(app.server)
      .get(`/dicom-web/studies/${study?.uid}/series?includefield=0008103E%2C00200011%2C00080060`)
      .set(doctor);
    expect(seriesRes.status).toBe(200);
    const series = JSON.parse(seriesRes.text) as Item[];
    expect(series.map((s) => first(s, '0020000E')).sort()).toEqual(study?.series.map((s) => s.uid).sort());
    for (const s of series) expect(String(first(s, '0008103E'))).toMatch(/^A study 1 series/);

    const se = study?.series[0];
    const metaRes = await request(app.server)
      .get(`/dicom-web/studies/${study?.uid}/series/${se?.uid}/metadata`)
      .set(doctor);
    expect(metaRes.status).toBe(200);
    expect(metaRes.headers['content-type']).toMatch(/^application\/dicom\+json/);
    const meta = JSON.parse(metaRes.text) as Item[];
    expect(meta.map((m) => first(m, '00080018')).sort()).toEqual([...(se?.instances ?? [])].sort());

    const frame = await request(app.server)
      .get(`/dicom-web/studies/${study?.uid}/series/${se?.uid}/instances/${se?.instances[0]}/frames/1`)
      .set(doctor)
      .set('accept', 'multipart/related; type=application/octet-stream; transfer-syntax=*')
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
    expect(frame.status).toBe(200);
    expect(frame.headers['content-type']).toMatch(/^multipart\/related/);
    expect((frame.body as Buffer).length).toBeGreaterThan(128 * 128 * 2); // CT_small: 128×128, 16 bits
  });
});

describe('RetrieveURL and BulkDataURI point at the facade', () => {
  test('in QIDO answers and in metadata', async () => {
    const study = data.A.studies[0];
    const qido = JSON.parse((await request(app.server).get('/dicom-web/studies').set(doctor)).text) as Item[];
    for (const s of qido) expect(String(first(s, '00081190'))).toMatch(new RegExp(`^${base}/dicom-web/studies/`));
    const meta = await request(app.server).get(`/dicom-web/studies/${study?.uid}/metadata`).set(doctor);
    const items = JSON.parse(meta.text) as Item[];
    const bulk = items.map((i) => i['7FE00010']?.BulkDataURI).filter(Boolean);
    expect(bulk.length).toBeGreaterThan(0);
    for (const u of bulk) expect(u).toMatch(new RegExp(`^${base}/dicom-web/studies/${study?.uid}/series/`));
    expect(meta.text).not.toContain(new URL(inject('stack').orthancUrl).host);
    // The BulkDataURI works through the facade.
    const pixel = await fetch(String(bulk[0]), { headers: doctor });
    expect(pixel.status).toBe(200);
    expect((await pixel.arrayBuffer()).byteLength).toBeGreaterThan(128 * 128 * 2);
  });

  test('with a path prefix in the public base URL', async () => {
    const prefixed = await testApp({ publicBaseUrl: 'https://ehr.example.test/imaging' });
    try {
      const study = data.A.studies[1];
      const token = bearer(await adminToken(prefixed)); // audience and issuer follow the public base URL
      const res = await prefixed.inject({ url: `/dicom-web/studies/${study?.uid}/metadata`, headers: token });
      expect(res.statusCode).toBe(200);
      const items = JSON.parse(res.body) as Item[];
      const bulk = items.map((i) => i['7FE00010']?.BulkDataURI);
      for (const u of bulk) expect(u).toMatch(/^https:\/\/ehr\.example\.test\/imaging\/dicom-web\/studies\//);
    } finally {
      await prefixed.close();
    }
  });

  test('behind a trusted proxy (EHR_TRUST_PROXY): Forwarded / X-Forwarded-Host / -Proto are followed', async () => {
    const proxied = await testApp({ publicBaseUrl: 'https://ehr.example.test/imaging', trustProxy: true });
    try {
      const study = data.A.studies[1];
      const token = bearer(await adminToken(proxied));
      const meta = await proxied.inject({
        url: `/dicom-web/studies/${study?.uid}/metadata`,
        headers: { ...token, 'x-forwarded-host': 'pacs.example.org:8443', 'x-forwarded-proto': 'http' },
      });
      expect(meta.statusCode).toBe(200);
      const bulk = (JSON.parse(meta.body) as Item[]).map((i) => i['7FE00010']?.BulkDataURI);
      expect(bulk.length).toBeGreaterThan(0);
      for (const u of bulk) expect(u).toMatch(/^http:\/\/pacs\.example\.org:8443\/imaging\/dicom-web\/studies\//);
      const qido = await proxied.inject({
        url: `/dicom-web/studies?StudyInstanceUID=${study?.uid}`,
        headers: { ...token, forwarded: 'for=10.1.2.3;host=rad.example.org;proto=https' },
      });
      const urls = (JSON.parse(qido.body) as Item[]).map((i) => String(first(i, '00081190')));
      expect(urls).toEqual([`https://rad.example.org/imaging/dicom-web/studies/${study?.uid}`]);
      // An invalid forwarded host is not echoed.
      const evil = await proxied.inject({
        url: `/dicom-web/studies?StudyInstanceUID=${study?.uid}`,
        headers: { ...token, 'x-forwarded-host': 'evil.example/"><x' },
      });
      expect(evil.body).not.toContain('evil');
      expect(evil.body).toContain('https://ehr.example.test/imaging/dicom-web/studies/');
    } finally {
      await proxied.close();
    }
  });

  test('without EHR_TRUST_PROXY the forwarding headers are ignored', async () => {
    const study = data.A.studies[0];
    const res = await request(app.server)
      .get(`/dicom-web/studies/${study?.uid}/metadata`)
      .set(doctor)
      .set('x-forwarded-host', 'pacs.example.org')
      .set('forwarded', 'host=pacs.example.org;proto=https');
    expect(res.status).toBe(200);
    expect(res.text).not.toContain('pacs.example.org');
    expect(res.text).toContain(`${base}/dicom-web/studies/`);
  });
});

describe('the npm dicomweb-client as a real client', () => {
  test('search, metadata and frames', async () => {
    const xhr2 = 'xhr2'; // untyped CommonJS module
    const { default: XMLHttpRequest } = (await import(xhr2)) as { default: unknown };
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XMLHttpRequest;
    const { api } = (await import('dicomweb-client')) as unknown as {
      api: { DICOMwebClient: new (o: Record<string, unknown>) => DicomWebClientApi };
    };
    const client = new api.DICOMwebClient({ url: `${base}/dicom-web`, headers: doctor });
    const studies = (await client.searchForStudies({ queryParams: { PatientID: data.C.mrn } })) as Item[];
    expect(studies.map((s) => first(s, '0020000D')).sort()).toEqual(studyUids(data.C).sort());
    const study = data.C.studies[0];
    const se = study?.series[0];
    const meta = (await client.retrieveSeriesMetadata({
      studyInstanceUID: study?.uid,
      seriesInstanceUID: se?.uid,
    })) as Item[];
    expect(meta).toHaveLength(se?.instances.length ?? -1);
    const frames = (await client.retrieveInstanceFrames({
      studyInstanceUID: study?.uid,
      seriesInstanceUID: se?.uid,
      sopInstanceUID: se?.instances[0],
      frameNumbers: [1],
    })) as ArrayBuffer[];
    expect(frames).toHaveLength(1);
    expect(frames[0]?.byteLength).toBe(128 * 128 * 2);
    // B's studies do not exist for this doctor.
    expect(await client.searchForStudies({ queryParams: { PatientID: data.B.mrn } })).toEqual([]);
  });
  test('a private-tag includefield (00091001) answers as Orthanc alone does', async () => {
    const xhr2 = 'xhr2'; // untyped CommonJS module
    const { default: XMLHttpRequest } = (await import(xhr2)) as { default: unknown };
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XMLHttpRequest;
    const { api } = (await import('dicomweb-client')) as unknown as {
      api: { DICOMwebClient: new (o: Record<string, unknown>) => DicomWebClientApi };
    };
    const made = makeStudy(data.A, '20240102', [1], 'private tag study');
    await storeInOrthanc(
      made.files.map((f) =>
        dicomWith(f, { '00090010': { vr: 'LO', Value: ['EHR TEST'] }, '00091001': { vr: 'LO', Value: ['private'] } }),
      ),
    );
    await linkStudy(app, data.A.id, made.study);
    const stack = inject('stack');
    const orthancAuth = `Basic ${Buffer.from(`${stack.orthancUsername}:${stack.orthancPassword}`).toString('base64')}`;
    const query = {
      studyInstanceUID: made.study.uid,
      seriesInstanceUID: made.study.series[0]?.uid,
      queryParams: { includefield: '00091001' },
    };
    const facade = new api.DICOMwebClient({ url: `${base}/dicom-web`, headers: doctor });
    const direct = new api.DICOMwebClient({
      url: `${stack.orthancUrl}/dicom-web`,
      headers: { authorization: orthancAuth },
    });
    const mine = (await facade.searchForInstances(query)) as Item[];
    const theirs = (await direct.searchForInstances(query)) as Item[];
    expect(mine.map((i) => first(i, '00080018'))).toEqual(made.study.series[0]?.instances);
    expect(mine.map((i) => i['00091001'] ?? null)).toEqual(theirs.map((i) => i['00091001'] ?? null));
  });
});

interface DicomWebClientApi {
  searchForStudies(o: { queryParams: Record<string, string> }): Promise<unknown>;
  searchForInstances(o: Record<string, unknown>): Promise<unknown>;
  retrieveSeriesMetadata(o: Record<string, unknown>): Promise<unknown>;
  retrieveInstanceFrames(o: Record<string, unknown>): Promise<unknown>;
}

describe('matching Orthanc cannot do by itself', () => {
  test('non-ASCII PatientName=Müller* matches (non-ASCII letters become wildcards, as Orthanc indexes names in ASCII)', async () => {
    const res = await request(app.server)
      .get(`/dicom-web/studies?PatientName=${encodeURIComponent('Müller*')}`)
      .set(admin);
    expect(res.status).toBe(200);
    const uids = (JSON.parse(res.text) as Item[]).map((s) => first(s, '0020000D'));
    expect(uids).toEqual(expect.arrayContaining(studyUids(data.A)));
    expect(uids).not.toEqual(expect.arrayContaining(studyUids(data.B)));
  });
});

describe('bad input: 400 with a reason, never a 5xx or a stack', () => {
  test.each([
    ['/dicom-web/studies?foo=bar', 400, /Unsupported query parameter/],
    ['/dicom-web/studies?limit=abc', 400, /limit/],
    ['/dicom-web/studies?StudyDate=20201341', 400, /not a valid date/],
    ['/dicom-web/studies?includefield=Nope', 400, /includefield/],
    ['/dicom-web/studies/not-a-uid/series', 400, /not a valid UID/],
    ['/dicom-web/studies/1.2/series/1.3/instances/1.4/frames/x', 400, /frames/],
    ['/dicom-web/studies/1.2/rendered?foo=1', 400, /Unsupported query parameter "foo" for rendered/],
    ['/dicom-web/wado?requestType=WADO&studyUID=1.2', 400, /seriesUID is required/],
    ['/dicom-web/studies?access_token=abc', 400, /Authorization header/],
    ['/dicom-web/nothing-here', 404, /Not found/],
  ])('%s', async (path, status, reason) => {
    const res = await request(app.server).get(path).set(admin);
    expect(res.status).toBe(status);
    const body = JSON.parse(res.text) as Item;
    expect(String(first(body, '00000902'))).toMatch(reason);
    expect(res.text).not.toMatch(/\.ts:\d+|at [A-Za-z]+ \(/);
  });

  test('a frame number past the end is a 4xx from the archive, not a 5xx', async () => {
    const s = data.A.studies[0];
    const se = s?.series[0];
    const res = await request(app.server)
      .get(`/dicom-web/studies/${s?.uid}/series/${se?.uid}/instances/${se?.instances[0]}/frames/5`)
      .set(admin);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });

  test('no token: 401; a token only in the query string is not accepted', async () => {
    expect((await request(app.server).get('/dicom-web/studies')).status).toBe(401);
    const token = admin.authorization.slice('Bearer '.length);
    const res = await request(app.server).get(`/dicom-web/studies?access_token=${token}`);
    expect([400, 401]).toContain(res.status);
    expect(res.status).not.toBe(200);
  });
});

describe('unsupported methods: 405 with Allow, as Orthanc answers (RFC 9110 §15.5.6)', () => {
  test.each([
    ['PUT', '/dicom-web/studies', 'GET, HEAD, POST'],
    ['DELETE', '/dicom-web/studies', 'GET, HEAD, POST'],
    ['PATCH', '/dicom-web/studies', 'GET, HEAD, POST'],
    ['DELETE', '/dicom-web/studies/1.2.3', 'GET, HEAD, POST'],
    ['PUT', '/dicom-web/studies/1.2.3/series', 'GET, HEAD'],
    ['POST', '/dicom-web/studies/1.2.3/series/1.4/metadata', 'GET, HEAD'],
    ['DELETE', '/dicom-web/studies/1.2.3/series/1.4/instances/1.5', 'GET, HEAD'],
    ['POST', '/dicom-web/studies/1.2.3/series/1.4/instances/1.5/frames/1', 'GET, HEAD'],
    ['PUT', '/dicom-web/wado', 'GET, HEAD'],
  ])('%s %s', async (method, path, allow) => {
    const res = await request(app.server)
      [method.toLowerCase() as 'put'](path)
      .set(admin)
      .set('content-type', 'application/dicom')
      .send(Buffer.from('not read'));
    expect(res.status).toBe(405);
    expect(res.headers['allow']).toBe(allow);
    expect(String(first(JSON.parse(res.text) as Item, '00000902'))).toContain(`${method} is not supported`);
  });

  test('an unknown path stays 404', async () => {
    const res = await request(app.server).put('/dicom-web/nothing-here').set(admin);
    expect(res.status).toBe(404);
  });
});

describe('CORS for configured origins only', () => {
  test('the configured origin is allowed, another is not', async () => {
    const ok = await request(app.server).get('/dicom-web/studies?limit=1').set(admin).set('origin', ORIGIN);
    expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
    const other = await request(app.server)
      .get('/dicom-web/studies?limit=1')
      .set(admin)
      .set('origin', 'http://evil.test');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  test('a browser preflight (no credentials) is answered for the configured origin only', async () => {
    const preflight = (origin: string) =>
      request(app.server)
        .options('/dicom-web/studies')
        .set('origin', origin)
        .set('access-control-request-method', 'GET')
        .set('access-control-request-headers', 'authorization,accept');
    const ok = await preflight(ORIGIN);
    expect(ok.status).toBeLessThan(300);
    expect(ok.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(String(ok.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
    const other = await preflight('http://evil.test');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    // Without the preflight header an OPTIONS request is an ordinary request: authentication applies.
    expect((await request(app.server).options('/dicom-web/studies')).status).toBe(401);
  });
});

/** A study big enough that it cannot fit in socket buffers: 24 instances of 512×512×16 bits (~12 MB). */
async function bigStudy(): Promise<{ study: string; series: string }> {
  const study = newUid();
  const series = newUid();
  const pixels = new Uint16Array(512 * 512).map((_, i) => i % 4096).buffer;
  const files = Array.from({ length: 24 }, (_, i) =>
    dicomWith(pydicomFile('CT_small.dcm'), {
      '00100020': { vr: 'LO', Value: [data.A.mrn] },
      '0020000D': { vr: 'UI', Value: [study] },
      '0020000E': { vr: 'UI', Value: [series] },
      '00080018': { vr: 'UI', Value: [newUid()] },
      '00200013': { vr: 'IS', Value: [i + 1] },
      '00280010': { vr: 'US', Value: [512] },
      '00280011': { vr: 'US', Value: [512] },
      '7FE00010': { vr: 'OW', Value: [pixels] },
    }),
  );
  await storeInOrthanc(files);
  await linkStudy(app, data.A.id, { uid: study, date: '20240101', series: [] });
  return { study, series };
}

describe('streaming faults', () => {
  test('HEAD on retrieval routes answers headers only and leaves nothing behind', async () => {
    const s = data.A.studies[0];
    for (const path of [
      `/dicom-web/studies/${s?.uid}`,
      `/dicom-web/studies/${s?.uid}/metadata`,
      '/dicom-web/studies',
    ]) {
      const res = await request(app.server).head(path).set(admin);
      expect(res.status, path).toBe(200);
    }
    for (let i = 0; i < 100 && app.dicomWebProxy.pending() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(app.dicomWebProxy.pending()).toBe(0);
    await new Promise((r) => setTimeout(r, 100)); // an uncaught upstream error would surface here
  });

  test('a client disconnecting mid-retrieval leaves no upstream request hanging', async () => {
    const { study } = await bigStudy();
    const received = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${base}/dicom-web/studies/${study}`, { headers: admin }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', (chunk: Buffer) => {
          res.pause();
          req.destroy(); // the client goes away after the first chunk
          resolve(chunk.length);
        });
      });
      req.on('error', (e) => (e.message === 'socket hang up' ? undefined : reject(e)));
      req.end();
    });
    expect(received).toBeGreaterThan(0);
    const proxy = app.dicomWebProxy;
    for (let i = 0; i < 100 && proxy.pending() > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(proxy.pending()).toBe(0);
    // And the facade still serves.
    expect((await request(app.server).get('/dicom-web/studies?limit=1').set(admin)).status).toBe(200);
  });

  test('Orthanc down: 502 with a body, promptly; then 503 with Retry-After while its breaker is open', async () => {
    const down = await testApp({ orthancUrl: `http://127.0.0.1:${await freePort()}` });
    try {
      const token = bearer(await adminToken(down));
      const [first, ...rest] = ['/dicom-web/studies', `/dicom-web/studies/${data.A.studies[0]?.uid}/metadata`];
      const res = await down.inject({ url: first!, headers: token });
      // 502 from the refused connection (503 if the breaker's heartbeat was quicker on a slow machine).
      expect([502, 503], first).toContain(res.statusCode);
      expect(JSON.parse(res.body)['00000902'].Value[0]).toMatch(/^The image archive is unavailable/);
      // The refused connection opened Orthanc's circuit breaker: the next request is not even tried.
      for (const path of rest) {
        const again = await down.inject({ url: path, headers: token });
        expect(again.statusCode, path).toBe(503);
        expect(again.headers['retry-after']).toMatch(/^\d+$/);
        expect(JSON.parse(again.body)['00000902'].Value[0]).toBe('The image archive is unavailable; retry later');
      }
    } finally {
      await down.close();
    }
  });

  test('Orthanc silent: 504 with a body after the upstream time-out', async () => {
    const silent: Server = createServer(() => {
      /* accepts connections, never answers */
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const slow = await testApp({ orthancUrl: `http://127.0.0.1:${port}`, upstreamTimeoutMs: 300 });
    try {
      const token = bearer(await adminToken(slow));
      const res = await slow.inject({ url: '/dicom-web/studies', headers: token });
      expect(res.statusCode).toBe(504);
      expect(JSON.parse(res.body)['00000902'].Value[0]).toBe('The image archive did not answer in time');
    } finally {
      await slow.close();
      silent.close();
    }
  });
});
