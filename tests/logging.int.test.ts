import request from 'supertest';
import { expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { testConfig } from './helpers/app.ts';

/** The log lines of one request to `/healthz` carrying secrets, at `level`. */
async function logOf(level: 'info' | 'debug'): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const app = await buildApp(testConfig({ logLevel: level }), { logStream: { write: (l) => void lines.push(l) } });
  await app.ready();
  try {
    await request(app.server)
      .get('/healthz?probe=1')
      .set('authorization', 'Bearer very-secret-token')
      .set('cookie', 'session=also-secret')
      .set('x-request-id', `log-test-${level}`);
  } finally {
    await app.close();
  }
  const log = lines.join('');
  expect(log).not.toContain('very-secret-token');
  expect(log).not.toContain('also-secret');
  return lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e['requestId'] === `log-test-${level}`);
}

test('at info, one line per request when it ends: method, URL, address, status, time and request id', async () => {
  const lines = await logOf('info');
  expect(lines.map((e) => e['msg'])).toEqual(['request completed']);
  expect(lines[0]).toMatchObject({ method: 'GET', url: '/healthz?probe=1', statusCode: 200 });
  expect(typeof lines[0]?.['ip']).toBe('string');
  expect(typeof lines[0]?.['responseTime']).toBe('number');
});

test('at debug, the incoming request is logged too, with Authorization and cookies redacted', async () => {
  const lines = await logOf('debug');
  const incoming = lines.find((e) => e['msg'] === 'incoming request') as { req: { headers: Record<string, string> } };
  expect(incoming.req.headers['authorization']).toBe('[redacted]');
  expect(incoming.req.headers['cookie']).toBe('[redacted]');
  expect(lines.some((e) => e['msg'] === 'request completed')).toBe(true);
});
