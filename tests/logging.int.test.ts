import request from 'supertest';
import { expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { testConfig } from './helpers/app.ts';

test('request logs carry the request id and redact Authorization and cookies', async () => {
  const lines: string[] = [];
  const app = await buildApp(testConfig({ logLevel: 'info' }), { logStream: { write: (l) => void lines.push(l) } });
  await app.ready();
  try {
    await request(app.server)
      .get('/healthz')
      .set('authorization', 'Bearer very-secret-token')
      .set('cookie', 'session=also-secret')
      .set('x-request-id', 'log-test-1');
  } finally {
    await app.close();
  }
  const log = lines.join('');
  expect(log).not.toContain('very-secret-token');
  expect(log).not.toContain('also-secret');
  const incoming = lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'incoming request');
  expect(incoming.requestId).toBe('log-test-1');
  expect(incoming.req.headers.authorization).toBe('[redacted]');
});
