/**
 * Series metadata warm-up (src/dicomweb/qido/metadata-prefetch.ts) against the real Orthanc and database: after a caller's
 * series QIDO-RS of a study, the metadata of its series is in the series cache (the metadata request is a cache hit:
 * Orthanc is not asked again), also when the request comes while the warm-up is still in flight; a change of the
 * study during or after the warm-up is never hidden by it; a caller without the study gets the uniform denial even
 * though the cache is warm; and `EHR_DICOMWEB_METADATA_PREFETCH=false` turns it off.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { studyContentChanged } from '../src/imaging/study-links.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { type Booked, bookPatientAndOrder, stowAll } from './helpers/stow.ts';

let app: FastifyInstance;
let booked: Booked;
let first: ReturnType<typeof makeSeries>;
let second: ReturnType<typeof makeSeries>;
let study: string;
const auth: Record<'admin' | 'owner' | 'other', { authorization: string }> = {} as never;

type Item = Record<string, { Value?: unknown[] }>;
const SOP_UID = '00080018';
const SERIES_UID = '0020000E';
/** What OHIF's dicomweb-client sends for QIDO and metadata. */
const DICOM_JSON = 'application/dicom+json';
/** OHIF's series QIDO query. */
const OHIF_SERIES_QUERY = '?includefield=00080021%2C00080031%2C0008103E%2C00200011';
const quiet = { debug: () => undefined };

const patientToken = async (patientId: string) =>
  bearer(
    await tokenFor(app, {
      user: { username: `prefetch-${patientId}`, roles: [] },
      scope: 'patient/*.rs',
      patient: patientId,
    }),
  );

beforeAll(async () => {
  app = await testApp({
    dicomwebMetadataPrefetch: true,
    dicomwebAccessCacheTtlMs: 60_000,
    dicomwebCacheTtlMs: 600_000,
  });
  auth.admin = bearer(await adminToken(app));
  booked = await bookPatientAndOrder(app, auth.admin);
  const other = await bookPatientAndOrder(app, auth.admin);
  auth.owner = await patientToken(booked.patientId);
  auth.other = await patientToken(other.patientId);
  first = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 2, seriesNumber: 1 });
  study = first.studyUid;
  second = makeSeries({
    patientId: booked.mrn,
    accession: booked.accession,
    studyUid: study,
    count: 1,
    seriesNumber: 2,
  });
  await stowAll(app, auth.admin, [...first.files, ...second.files]);
});

afterAll(async () => {
  await app?.close();
});

const binary = (req: request.Test) =>
  req.buffer(true).parse((res, cb) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => cb(null, Buffer.concat(chunks)));
  });

/** The series QIDO of the study as `who`, with the given Accept-Encoding (supertest does not decode the body). */
async function qidoSeries(a: FastifyInstance, who: { authorization: string }, encoding = 'identity', query = '') {
  const res = await binary(
    request(a.server)
      .get(`/dicom-web/studies/${study}/series${query}`)
      .set(who)
      .set('accept', DICOM_JSON)
      .set('accept-encoding', encoding),
  );
  expect(res.status).toBe(200);
  return res;
}

async function metadata(a: FastifyInstance, who: { authorization: string }, series: string) {
  return binary(
    request(a.server)
      .get(`/dicom-web/studies/${study}/series/${series}/metadata`)
      .set(who)
      .set('accept', DICOM_JSON)
      .set('accept-encoding', 'gzip, deflate, br'),
  );
}

const sopUids = (res: request.Response) =>
  (JSON.parse((res.body as Buffer).toString('utf8')) as Item[]).map((i) => String(i[SOP_UID]?.Value?.[0])).sort();

const cacheStats = (a: FastifyInstance = app) => ({ ...a.dicomWebSeriesCache.stats });
const prefetchStats = (a: FastifyInstance = app) => ({ ...a.dicomWebMetadataPrefetch.stats });

describe('after a series QIDO-RS', () => {
  // A patient-restricted caller's answer is filtered by the facade (src/dicomweb/qido/linked-search.ts), an all-patients caller's is relayed
  // as Orthanc streams it (its series UIDs are scanned on the side: series-uid-scan.ts).
  test.each<['owner' | 'admin', string, string]>([
    ['owner', 'identity', ''],
    ['owner', 'gzip, deflate, br', ''],
    ['owner', 'gzip, deflate, br', OHIF_SERIES_QUERY],
    ['admin', 'identity', ''],
    ['admin', 'gzip, deflate, br', ''],
    ['admin', 'gzip, deflate, br', OHIF_SERIES_QUERY],
  ])(
    '%s (Accept-Encoding %s, query %o): the metadata of every series is served from the cache, as the normal fill stores it',
    async (who, encoding, query) => {
      app.dicomWebSeriesCache.invalidate(study);
      const before = prefetchStats();
      const qido = await qidoSeries(app, auth[who], encoding, query);
      if (encoding !== 'identity') expect(qido.headers['content-encoding']).toBe('gzip'); // Orthanc's coding passed on
      await app.dicomWebMetadataPrefetch.settled();
      const after = prefetchStats();
      expect([after.started - before.started, after.stored - before.stored, after.failed]).toEqual([2, 2, 0]);

      const cached = cacheStats();
      const warm = await Promise.all([first, second].map((s) => metadata(app, auth.owner, s.seriesUid)));
      const served = cacheStats();
      expect([served.hits - cached.hits, served.misses - cached.misses]).toEqual([2, 0]);
      expect(warm.map((r) => r.status)).toEqual([200, 200]);
      expect(sopUids(warm[0] as request.Response)).toEqual([...first.sopUids].sort());
      expect(sopUids(warm[1] as request.Response)).toEqual(second.sopUids);

      // The same bytes and headers as the answer a cold metadata request stores.
      app.dicomWebSeriesCache.invalidate(study);
      const cold = await metadata(app, auth.owner, first.seriesUid);
      expect(cacheStats().misses - served.misses).toBe(1);
      expect(Buffer.compare(cold.body as Buffer, warm[0]?.body as Buffer)).toBe(0);
      for (const h of ['content-type', 'content-length', 'content-encoding']) {
        expect(warm[0]?.headers[h], h).toBe(cold.headers[h]);
      }
    },
  );

  test.each<'owner' | 'admin'>(['owner', 'admin'])(
    '%s: a metadata request sent as soon as the QIDO answer arrived is answered by the warm-up, not a second fetch',
    async (who) => {
      app.dicomWebSeriesCache.invalidate(study);
      const qido = await qidoSeries(app, auth[who]); // identity: the warm-ups start before the answer ends
      const listed = (JSON.parse((qido.body as Buffer).toString('utf8')) as Item[]).map(
        (i) => i[SERIES_UID]?.Value?.[0],
      );
      expect(listed.sort()).toEqual([first.seriesUid, second.seriesUid].sort());
      const before = cacheStats();
      const res = await metadata(app, auth[who], first.seriesUid); // joins the fetch in flight, or hits its answer
      const after = cacheStats();
      expect(res.status).toBe(200);
      expect(sopUids(res)).toEqual([...first.sopUids].sort());
      expect([after.hits - before.hits, after.misses - before.misses]).toEqual([1, 0]);
      await app.dicomWebMetadataPrefetch.settled();
    },
  );

  test('a STOW-RS of a new instance into the study after the warm-up: the next metadata includes it', async () => {
    app.dicomWebSeriesCache.invalidate(study);
    await qidoSeries(app, auth.owner);
    await app.dicomWebMetadataPrefetch.settled();
    const hits = cacheStats().hits;
    const warm = await metadata(app, auth.owner, first.seriesUid);
    expect(cacheStats().hits).toBe(hits + 1);
    const more = makeSeries({
      patientId: booked.mrn,
      accession: booked.accession,
      studyUid: study,
      seriesUid: first.seriesUid,
      count: 1,
    });
    await stowAll(app, auth.admin, more.files);
    const next = await metadata(app, auth.owner, first.seriesUid);
    expect(next.status).toBe(200);
    expect(sopUids(next)).toEqual([...sopUids(warm), ...more.sopUids].sort());
    first.sopUids.push(...more.sopUids);
  });

  test.each<[string, () => void]>([
    ['its study changes (what STOW-RS, the change feed and relinking announce)', () => studyContentChanged(study)],
    [
      'the cross-replica change signal is lost and back',
      () => {
        app.dicomWebSeriesCache.suspend();
        app.dicomWebSeriesCache.resume();
      },
    ],
    ['another replica announces a change of any study', () => app.dicomWebSeriesCache.invalidate()],
  ])('a warm-up in flight when %s stores nothing', async (_w, change) => {
    app.dicomWebSeriesCache.invalidate(study);
    const before = prefetchStats();
    app.dicomWebMetadataPrefetch.warm(study, [first.seriesUid], quiet); // starts its fetch at once
    change();
    await app.dicomWebMetadataPrefetch.settled();
    const after = prefetchStats();
    expect([after.started - before.started, after.stored - before.stored]).toEqual([1, 0]);
    const misses = cacheStats().misses;
    const res = await metadata(app, auth.owner, first.seriesUid);
    expect(res.status).toBe(200);
    expect(cacheStats().misses).toBe(misses + 1);
  });
});

describe('authorization', () => {
  test('a caller not allowed to see the study gets the uniform denial while its series are warm, and warms nothing', async () => {
    app.dicomWebSeriesCache.invalidate(study);
    await qidoSeries(app, auth.owner);
    await app.dicomWebMetadataPrefetch.settled();
    expect(app.dicomWebSeriesCache.stats.stored).toBeGreaterThan(0);

    const before = { cache: cacheStats(), prefetch: prefetchStats() };
    const denied = await metadata(app, auth.other, first.seriesUid);
    const unknown = await binary(
      request(app.server)
        .get(`/dicom-web/studies/${newUid()}/series/${first.seriesUid}/metadata`)
        .set(auth.other)
        .set('accept', DICOM_JSON),
    );
    expect(denied.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect((denied.body as Buffer).toString('utf8')).toBe((unknown.body as Buffer).toString('utf8'));
    // Its series QIDO is the uniform empty match and starts no warm-up.
    const qido = await qidoSeries(app, auth.other);
    expect((qido.body as Buffer).toString('utf8')).toBe('[]');
    await app.dicomWebMetadataPrefetch.settled();
    expect(cacheStats().hits).toBe(before.cache.hits);
    expect(prefetchStats().requested).toBe(before.prefetch.requested);
  });
});

describe('EHR_DICOMWEB_METADATA_PREFETCH=false', () => {
  test('a series QIDO-RS warms nothing: the metadata request asks Orthanc', async () => {
    const off = await testApp({ dicomwebMetadataPrefetch: false, dicomwebCacheTtlMs: 600_000 });
    try {
      const admin = bearer(await adminToken(off));
      await qidoSeries(off, admin);
      await off.dicomWebMetadataPrefetch.settled();
      expect(prefetchStats(off).requested).toBe(0);
      const before = cacheStats(off);
      const res = await metadata(off, admin, first.seriesUid);
      expect(res.status).toBe(200);
      const after = cacheStats(off);
      expect([after.hits - before.hits, after.misses - before.misses]).toEqual([0, 1]);
    } finally {
      await off.close();
    }
  });
});
