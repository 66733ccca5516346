/**
 * A streamed upload refused before its body ended must not stall the client's keep-alive connection: the facade reads
 * STOW-RS and upload bodies as streams, and a body left half-read would hold every later request on that connection.
 */
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken } from './helpers/auth.ts';

let app: FastifyInstance;
let port = 0;
let token = '';

beforeAll(async () => {
  port = await freePort();
  app = await buildApp(testConfig({ publicBaseUrl: `http://127.0.0.1:${port}` }));
  await app.listen({ host: '127.0.0.1', port });
  token = await adminToken(app);
});
afterAll(async () => {
  await app.close();
});

/** Writes `bytes` on one connection and collects what comes back until the server closes it or 10 s pass. */
function exchange(bytes: Buffer): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ text, closedByServer: false });
    }, 10_000);
    sock.on('data', (c) => {
      text += c.toString('latin1');
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByServer: true });
    });
    sock.on('error', () => undefined);
    sock.write(bytes);
  });
}

test.each([
  ['STOW-RS', '/dicom-web/studies', 'multipart/related; type="application/dicom"; boundary=b'],
  ['the upload API', '/api/v1/dicom/upload', 'multipart/form-data; boundary=b'],
])('%s refused mid-body: the connection is closed, not left waiting', async (_name, path, type) => {
  // A part header without a colon makes the body unreadable at once; 2 MB of body follow it.
  const body = Buffer.concat([Buffer.from('--b\r\nnot a header line\r\n\r\n'), Buffer.alloc(2_000_000, 0x41)]);
  const first = Buffer.from(
    `POST ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: ${type}\r\n` +
      `content-length: ${body.length}\r\n\r\n`,
  );
  const second = Buffer.from('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
  const { text, closedByServer } = await exchange(Buffer.concat([first, body, second]));
  expect(text).toMatch(/^HTTP\/1\.1 4\d\d /);
  // Either the server closed the connection after its refusal (and said so), or it went on to answer the next
  // request; a connection left open with the next request unanswered is the defect.
  const answeredNext = (text.match(/HTTP\/1\.1 /g) ?? []).length === 2;
  if (!answeredNext) {
    expect(closedByServer).toBe(true);
    expect(text.toLowerCase()).toContain('connection: close');
  }
});
