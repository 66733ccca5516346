/**
 * The DICOMweb series cache (src/dicomweb/cache/series-cache.ts) against the real Orthanc and database: a repeated series
 * metadata / instance QIDO request is answered from the cache (counted by the cache, byte-identical), authorization
 * still runs first (a caller without the study gets the uniform answer even when the series is cached), and STOW-RS
 * into the series or a content change announced for the study (what the change feed does) invalidates it.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { studyContentChanged } from '../src/imaging/study-links.ts';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import {
  type Booked,
  bookPatientAndOrder,
  multipartBody,
  orthanc,
  orthancIdOf,
  STOW_TYPE,
  stowAll,
} from './helpers/stow.ts';

let app: FastifyInstance;
let booked: Booked;
let series: ReturnType<typeof makeSeries>;
const auth: Record<'admin' | 'owner' | 'other', { authorization: string }> = {} as never;

type Item = Record<string, { Value?: unknown[] }>;
const SOP_UID = '00080018';

const stow = (files: Buffer[]): Promise<void> => stowAll(app, auth.admin, files);

const patientToken = async (patientId: string) =>
  bearer(
    await tokenFor(app, {
      user: { username: `pat-${patientId}`, roles: [] },
      scope: 'patient/*.rs',
      patient: patientId,
    }),
  );

beforeAll(async () => {
  app = await testApp({ dicomwebAccessCacheTtlMs: 60_000, dicomwebCacheTtlMs: 600_000 });
  auth.admin = bearer(await adminToken(app));
  booked = await bookPatientAndOrder(app, auth.admin);
  const other = await bookPatientAndOrder(app, auth.admin);
  auth.owner = await patientToken(booked.patientId);
  auth.other = await patientToken(other.patientId);
  series = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 2 });
  await stow(series.files);
});

afterAll(async () => {
  await app?.close();
});

const paths = () => ({
  metadata: `/dicom-web/studies/${series.studyUid}/series/${series.seriesUid}/metadata`,
  instances: `/dicom-web/studies/${series.studyUid}/series/${series.seriesUid}/instances`,
});
type Kind = keyof ReturnType<typeof paths>;

async function get(kind: Kind, who: keyof typeof auth, query = '') {
  return request(app.server)
    .get(`${paths()[kind]}${query}`)
    .set(auth[who])
    .buffer(true)
    .parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
}

async function sopUids(kind: Kind, who: keyof typeof auth = 'owner'): Promise<string[]> {
  const res = await get(kind, who);
  expect(res.status).toBe(200);
  return (JSON.parse((res.body as Buffer).toString('utf8')) as Item[])
    .map((i) => String(i[SOP_UID]?.Value?.[0]))
    .sort();
}

const stats = () => ({ ...app.dicomWebSeriesCache.stats });

describe.each<Kind>(['metadata', 'instances'])('series %s', (kind) => {
  test('the second request is served from the cache, byte-identical with the same headers', async () => {
    app.dicomWebSeriesCache.invalidate(series.studyUid);
    const before = stats();
    const first = await get(kind, 'owner');
    expect(first.status).toBe(200);
    const afterMiss = stats();
    expect(afterMiss.misses - before.misses).toBe(1);
    expect(afterMiss.stored - before.stored).toBe(1);

    // The owner hits it again. Series metadata is Orthanc's answer for every caller allowed to see the study, so the
    // admin shares its entry; a restricted caller's instance QIDO is filtered to the linked Orthanc study
    // (src/dicomweb/access/linked-orthanc-studies.ts), so the admin (who may also see other Orthanc studies under the UID) has its own.
    const second = await get(kind, 'owner');
    const third = await get(kind, 'admin');
    const afterHits = stats();
    const shared = kind === 'metadata';
    expect(afterHits.hits - afterMiss.hits).toBe(shared ? 2 : 1);
    expect(afterHits.misses - afterMiss.misses).toBe(shared ? 0 : 1);
    for (const res of shared ? [second, third] : [second]) {
      expect(res.status).toBe(200);
      expect(Buffer.compare(res.body as Buffer, first.body as Buffer)).toBe(0);
      expect(res.headers['content-type']).toBe(first.headers['content-type']);
    }
    expect(third.status).toBe(200);
    expect(await sopUids(kind, 'admin')).toEqual(await sopUids(kind, 'owner'));
    expect((first.body as Buffer).length).toBeGreaterThan(2);
  });

  test('a caller not allowed to see the study gets the uniform answer even while the series is cached', async () => {
    await get(kind, 'owner'); // make sure it is cached
    const before = stats();
    const res = await get(kind, 'other');
    const unknown = await request(app.server).get(paths()[kind].replace(series.studyUid, newUid())).set(auth.other);
    if (kind === 'metadata') {
      expect(res.status).toBe(404);
      expect(unknown.status).toBe(404);
      expect((res.body as Buffer).toString('utf8')).toBe(unknown.text);
    } else {
      // QIDO's uniform answer for a study the caller cannot see is an empty match.
      expect(res.status).toBe(200);
      expect((res.body as Buffer).toString('utf8')).toBe('[]');
    }
    expect(stats().hits).toBe(before.hits);
  });

  test('a request with a query string bypasses the cache', async () => {
    const before = stats();
    const query = kind === 'metadata' ? '?x=1' : '?includefield=00080018';
    const res = await get(kind, 'owner', query);
    expect(res.status).toBeLessThan(500);
    const after = stats();
    expect([after.hits, after.misses, after.stored]).toEqual([before.hits, before.misses, before.stored]);
  });

  test('STOW-RS of a new instance into the series invalidates: the next answer includes it', async () => {
    const cachedUids = await sopUids(kind);
    expect(await sopUids(kind)).toEqual(cachedUids); // served from the cache
    const more = makeSeries({
      patientId: booked.mrn,
      accession: booked.accession,
      studyUid: series.studyUid,
      seriesUid: series.seriesUid,
      count: 1,
    });
    await stow(more.files);
    expect(await sopUids(kind)).toEqual([...cachedUids, ...more.sopUids].sort());
  });
});

describe('hold mode (study not linked to any patient)', () => {
  test('STOW-RS of a new instance into a held series invalidates: the next answer includes it', async () => {
    const hold = await testApp({ stowUnmatched: 'hold', dicomwebCacheTtlMs: 600_000 });
    try {
      const admin = bearer(await adminToken(hold));
      const patientId = `UNKNOWN-${newUid().slice(-20)}`;
      const held = makeSeries({ patientId, count: 1 });
      const send = async (files: Buffer[]) => {
        const boundary = `series-cache-${newUid()}`;
        const res = await request(hold.server)
          .post('/dicom-web/studies')
          .set(admin)
          .set('content-type', STOW_TYPE(boundary))
          .send(multipartBody(files, boundary));
        expect(res.status, res.text).toBe(202); // stored, with the warning "queued for manual linking"
      };
      const uids = async () => {
        const res = await request(hold.server)
          .get(`/dicom-web/studies/${held.studyUid}/series/${held.seriesUid}/metadata`)
          .set(admin);
        expect(res.status, res.text).toBe(200);
        return (JSON.parse(res.text) as Item[]).map((i) => String(i[SOP_UID]?.Value?.[0])).sort();
      };
      await send(held.files);
      expect(await uids()).toEqual(held.sopUids);
      const hits = hold.dicomWebSeriesCache.stats.hits;
      expect(await uids()).toEqual(held.sopUids);
      expect(hold.dicomWebSeriesCache.stats.hits).toBe(hits + 1);
      const more = makeSeries({ patientId, studyUid: held.studyUid, seriesUid: held.seriesUid, count: 1 });
      await send(more.files);
      expect(await uids()).toEqual([...held.sopUids, ...more.sopUids].sort());
    } finally {
      await hold.close();
    }
  });
});

describe('deletion in Orthanc', () => {
  test('the cache keeps the old answer until the study is announced changed, then drops it', async () => {
    // The change feed announces deletions/StableStudy with studyContentChanged (src/change-feed/plugin.ts); its sweep
    // runs on a timer, so this test calls the same announcement directly after deleting in Orthanc.
    const before = await sopUids('metadata');
    const beforeQido = await sopUids('instances');
    const victim = before[0]!;
    const id = await orthancIdOf(victim, 'Instance');
    expect(id).toBeDefined();
    expect((await orthanc(`/instances/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await sopUids('metadata')).toEqual(before); // still the cached answer: the facade was not told
    studyContentChanged(series.studyUid);
    expect(await sopUids('metadata')).toEqual(before.filter((u) => u !== victim));
    expect(await sopUids('instances')).toEqual(beforeQido.filter((u) => u !== victim));
  });
});
