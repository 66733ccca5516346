/**
 * HTTP compression of relayed DICOMweb answers, against the real Orthanc (which gzips when asked): an answer relayed
 * byte for byte (WADO-RS frames) carries the client's Accept-Encoding to Orthanc and Orthanc's Content-Encoding back,
 * so a browser gets the same compressed answer as from Orthanc directly; an answer kept in the series cache is always
 * fetched and stored identity-encoded, so a client that accepts no encoding never gets a compressed body from it.
 */
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer } from './helpers/auth.ts';
import { makeSeries, newUid } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';

let app: FastifyInstance;
let admin: { authorization: string };
let series: ReturnType<typeof makeSeries>;

beforeAll(async () => {
  app = await testApp({ dicomwebCacheTtlMs: 600_000 });
  admin = bearer(await adminToken(app));
  const booked = await bookPatientAndOrder(app, admin);
  series = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 1 });
  const boundary = `encoding-${newUid()}`;
  const res = await request(app.server)
    .post('/dicom-web/studies')
    .set(admin)
    .set('content-type', STOW_TYPE(boundary))
    .send(multipartBody(series.files, boundary));
  expect(res.status, res.text).toBe(200);
});

afterAll(async () => {
  await app?.close();
});

const FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

const get = (url: string, headers: Record<string, string>) =>
  app.inject({ method: 'GET', url, headers: { ...admin, ...headers } });

/** A multipart body with its (random, per answer) boundary replaced, so two answers compare byte for byte. */
function withoutBoundary(body: Buffer, contentType: string): string {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  expect(boundary).toBeDefined();
  return body
    .toString('latin1')
    .split(boundary as string)
    .join('BOUNDARY');
}

describe('Accept-Encoding on relayed answers', () => {
  test('frames: gzip when the client accepts it (same content once decoded), identity when it does not', async () => {
    const url = `/dicom-web/studies/${series.studyUid}/series/${series.seriesUid}/instances/${series.sopUids[0]}/frames/1`;
    const plain = await get(url, { accept: FRAME_ACCEPT });
    expect(plain.statusCode).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    const gzipped = await get(url, { accept: FRAME_ACCEPT, 'accept-encoding': 'gzip, deflate, br' });
    expect(gzipped.statusCode).toBe(200);
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(String(gzipped.headers['vary'])).toMatch(/accept-encoding/i);
    expect(gzipped.rawPayload.length).toBeLessThan(plain.rawPayload.length);
    expect(withoutBoundary(gunzipSync(gzipped.rawPayload), String(gzipped.headers['content-type']))).toBe(
      withoutBoundary(plain.rawPayload, String(plain.headers['content-type'])),
    );
  });

  test('cached series metadata is identity-encoded, whoever filled the cache', async () => {
    const url = `/dicom-web/studies/${series.studyUid}/series/${series.seriesUid}/metadata`;
    const hits = app.dicomWebSeriesCache.stats.hits;
    // The first request (a miss, fetched and stored) accepts gzip; the second (a hit) accepts nothing.
    const first = await get(url, { accept: 'application/dicom+json', 'accept-encoding': 'gzip' });
    const second = await get(url, { accept: 'application/dicom+json' });
    for (const res of [first, second]) {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(res.payload)).toHaveLength(1);
    }
    expect(app.dicomWebSeriesCache.stats.hits).toBe(hits + 1);
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
  });
});
