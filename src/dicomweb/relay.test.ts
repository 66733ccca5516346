/**
 * Relay mechanics through a real Fastify route and the scope's error handling, against a fake upstream (the only
 * fake Orthanc; integration tests use the real one): disconnects abort upstream, time-outs give 504, faults 502.
 */
import { GcPacer } from './http/gc-pacer.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, test } from 'vitest';
import { OrthancProxy } from '../orthanc/proxy.ts';
import { installDicomErrorHandling } from './plugin.ts';
import { type DicomWebContext, relay } from './relay.ts';
import { type CachedAnswer, SeriesCache } from './cache/series-cache.ts';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function upstream(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function facade(upstreamUrl: string, timeoutMs = 2000): Promise<{ app: FastifyInstance; base: string }> {
  const proxy = new OrthancProxy({ url: upstreamUrl, authorization: 'Basic x', timeoutMs });
  const ctx = {
    proxy,
    dicomWebRoot: '/dicom-web',
    maxUids: 10,
    urls: { forwarded: '', publicRoot: '' },
    gcPacer: new GcPacer(64 * 1024, () => undefined),
  } as unknown as DicomWebContext;
  const app = Fastify();
  installDicomErrorHandling(app);
  app.get('/r', (req, reply) => relay(req, reply, ctx, '/thing'));
  await app.listen({ port: 0, host: '127.0.0.1' });
  cleanup.push(async () => {
    await app.close();
    await proxy.close();
  });
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

describe('relay', () => {
  test('a client disconnecting mid-transfer aborts the upstream request', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((r) => {
      closed = r;
    });
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 512 * 1024 * 1024 });
      const chunk = Buffer.alloc(256 * 1024, 1);
      const pump = () => {
        while (res.write(chunk)) {
          /* fill until backpressure */
        }
      };
      res.on('drain', pump);
      pump();
      res.on('close', () => closed());
    });
    const { base } = await facade(up.url);
    const ac = new AbortController();
    const res = await fetch(`${base}/r`, { signal: ac.signal });
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    await reader?.read();
    ac.abort();
    await upstreamClosed; // resolves only if the facade tore down its upstream request
  });

  test('upstream time-out gives 504 with a readable body', async () => {
    const up = await upstream(() => {});
    const { base } = await facade(up.url, 150);
    const res = await fetch(`${base}/r`);
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({ '00000902': { vr: 'LO', Value: ['The image archive did not answer in time'] } });
  });

  test.each([
    ['upstream refuses connections', null, 502, 'The image archive is unavailable'],
    ['upstream answers 500', 500, 502, 'The image archive failed to answer'],
    ['upstream answers 401 (facade credentials wrong)', 401, 502, 'The image archive failed to answer'],
    ['upstream answers 404', 404, 404, 'Not found'],
    ['upstream answers 400 with a reason', 400, 400, 'The image archive rejected the request: Bad file format'],
  ])('%s', async (_name, upstreamStatus, status, message) => {
    const up = await upstream((_req, res) => {
      res.writeHead(upstreamStatus ?? 500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Message: 'Bad file format', Uri: '/dicom-web/thing' }));
    });
    if (upstreamStatus === null) {
      up.server.closeAllConnections();
      await new Promise((r) => up.server.close(r));
    }
    const { base } = await facade(up.url);
    const res = await fetch(`${base}/r`);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    const text = await res.text();
    expect(JSON.parse(text)['00000902'].Value[0]).toBe(message);
    expect(text).not.toMatch(/127\.0\.0\.1|Uri|at .*\.ts/);
  });
});

/** A facade route relaying `/thing` through the series cache (key 'k', study 'S'), against `upstreamUrl`. */
async function cachingFacade(upstreamUrl: string): Promise<{ base: string; cache: SeriesCache }> {
  const proxy = new OrthancProxy({ url: upstreamUrl, authorization: 'Basic x', timeoutMs: 2000 });
  const cache = new SeriesCache({ maxBytes: 1 << 20, ttlMs: 60_000, maxEntryBytes: 1 << 16 });
  const ctx = {
    proxy,
    dicomWebRoot: '/dicom-web',
    maxUids: 10,
    urls: { forwarded: '', publicRoot: '' },
    seriesCache: cache,
    gcPacer: new GcPacer(64 * 1024, () => undefined),
  } as unknown as DicomWebContext;
  const app = Fastify();
  installDicomErrorHandling(app);
  app.get('/c', (req, reply) => relay(req, reply, ctx, '/thing', { cache: { key: 'k', study: 'S' } }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  cleanup.push(async () => {
    await app.close();
    await proxy.close();
  });
  return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, cache };
}

/** Waits (without a clock) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe('relay with the series cache: single flight with warm-ups', () => {
  const warmed: CachedAnswer = {
    headers: { 'content-type': 'application/dicom+json', 'content-length': '8' },
    body: Buffer.from('"warmed"'),
  };
  test.each<[string, string, number, (end: (a: CachedAnswer | Error) => void, cache: SeriesCache) => void]>([
    ['the warm-up stores its answer', '"warmed"', 0, (end) => end(warmed)],
    ['the warm-up fails', '"relayed"', 1, (end) => end(new Error('archive down'))],
    [
      'the study changes before the warm-up ends',
      '"relayed"',
      1,
      (end, cache) => {
        cache.invalidate('S');
        end(warmed);
      },
    ],
  ])('a request arriving while %s: answered %s, upstream asked %i time(s)', async (_w, body, asked, finish) => {
    let requests = 0;
    const up = await upstream((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('"relayed"');
    });
    const { base, cache } = await cachingFacade(up.url);
    let end!: (a: CachedAnswer | Error) => void;
    const filling = cache.fill(
      'k',
      'S',
      () =>
        new Promise<CachedAnswer>((resolve, reject) => (end = (a) => (a instanceof Error ? reject(a) : resolve(a)))),
    );
    filling?.catch(() => undefined);
    const answer = fetch(`${base}/c`);
    await until(() => cache.stats.joined === 1); // the request is waiting for the warm-up
    finish(end, cache);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(body);
    expect(requests).toBe(asked);
  });

  test('a warm-up does not start while a relayed miss for the same key is on its way', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let requests = 0;
    const up = await upstream((_req, res) => {
      requests++;
      void held.then(() => {
        res.writeHead(200, { 'content-type': 'application/dicom+json' });
        res.end('"relayed"');
      });
    });
    const { base, cache } = await cachingFacade(up.url);
    const answer = fetch(`${base}/c`);
    await until(() => requests === 1);
    expect(cache.fill('k', 'S', () => Promise.resolve(undefined))).toBeUndefined();
    release();
    const res = await answer;
    expect(await res.text()).toBe('"relayed"');
    await until(() => cache.has('k')); // stored by the relayed miss
    cache.invalidate('S');
    // The relayed miss ended: it no longer holds the key back.
    expect(cache.fill('k', 'S', () => Promise.resolve(undefined))).toBeDefined();
  });
});
