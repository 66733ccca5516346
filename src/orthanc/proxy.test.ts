/**
 * Proxy mechanics against a fake upstream (node:http): the only place a fake Orthanc is used. Integration tests use
 * the real one.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { OrthancUnavailableError } from './errors.ts';
import { OrthancProxy, readText } from './proxy.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];
const proxies: OrthancProxy[] = [];

async function upstream(handler: Handler): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function proxy(url: string, timeoutMs = 2000): OrthancProxy {
  const p = new OrthancProxy({
    url,
    authorization: 'Basic b3J0aGFuYzpzZWNyZXQ=',
    timeoutMs,
    forwarded: 'host=ehr.example;proto=https',
  });
  proxies.push(p);
  return p;
}

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

describe('OrthancProxy', () => {
  test('sends Orthanc credentials, Accept and Forwarded only, and streams the body unchanged', async () => {
    let seen: IncomingMessage['headers'] = {};
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    const url = await upstream((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': payload.length });
      res.end(payload);
    });
    const res = await proxy(`${url}/base`).get('/dicom-web/x', {
      accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*',
    });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    expect(res.status).toBe(200);
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    expect(seen.authorization).toBe('Basic b3J0aGFuYzpzZWNyZXQ=');
    expect(seen.accept).toBe('multipart/related; type=application/octet-stream; transfer-syntax=*');
    expect(seen.forwarded).toBe('host=ehr.example;proto=https');
    expect(Object.keys(seen).sort()).toEqual(['accept', 'authorization', 'connection', 'forwarded', 'host']);
  });

  test('reuses kept-alive sockets for back-to-back requests (Orthanc sends Keep-Alive: timeout=1)', async () => {
    const ports = new Set<number>();
    const url = await upstream((req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      res.writeHead(200, { 'keep-alive': 'timeout=1', 'content-length': 2 });
      res.end('ok');
    });
    const p = proxy(url);
    for (let i = 0; i < 6; i++) await readText((await p.get('/')).body, 100);
    expect(ports.size).toBeLessThanOrEqual(2);
  });

  test('a close-delimited body (how Orthanc streams studies) survives a slow reader', async () => {
    const payload = Buffer.alloc(8 * 1024 * 1024, 3);
    const url = await upstream((_req, res) => {
      res.writeHead(200, { connection: 'close', 'content-type': 'multipart/related' });
      res.end(payload); // no Content-Length: the body ends when the socket closes
    });
    const res = await proxy(url).get('/studies/1.2');
    res.body.pause();
    await new Promise((r) => setTimeout(r, 200)); // the upstream finishes and closes while we are paused
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
  });

  test('aborting after the answer started, with nobody reading the body, raises no uncaught error', async () => {
    const url = await upstream((_req, res) => {
      res.writeHead(200, { 'content-length': 10 * 1024 * 1024 });
      res.write(Buffer.alloc(1024));
    });
    const ac = new AbortController();
    const res = await proxy(url).get('/x', { signal: ac.signal });
    ac.abort();
    await new Promise((r) => setTimeout(r, 50)); // an unhandled 'error' would fail the run here
    expect(res.body.destroyed).toBe(true);
  });

  test('no answer within the time-out: OrthancUnavailableError with timedOut (→ 504)', async () => {
    const url = await upstream(() => {
      /* never answers */
    });
    const err = await proxy(url, 150)
      .get('/slow')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrthancUnavailableError);
    expect((err as OrthancUnavailableError).timedOut).toBe(true);
    expect((err as Error).message).not.toContain('127.0.0.1');
  });

  test('connection refused: OrthancUnavailableError without timedOut (→ 502)', async () => {
    const url = await upstream(() => {});
    const dead = url;
    for (const s of servers.splice(0)) s.close();
    const err = await proxy(dead)
      .get('/')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrthancUnavailableError);
    expect((err as OrthancUnavailableError).timedOut).toBe(false);
  });

  test('aborting mid-body closes the upstream request', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => {
      upstreamClosed = r;
    });
    const url = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 100 * 1024 * 1024 });
      res.write(Buffer.alloc(64 * 1024));
      res.on('close', () => upstreamClosed());
    });
    const ac = new AbortController();
    const res = await proxy(url).get('/big', { signal: ac.signal });
    const first = await new Promise<Buffer>((r) => res.body.once('data', r));
    expect(first.length).toBeGreaterThan(0);
    ac.abort();
    await closed;
  });
});
