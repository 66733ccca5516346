import { describe, expect, test } from 'vitest';
import { checkReadiness } from './checks.ts';

const ok = async () => ({ version: '1' });
const fail = async () => {
  throw new Error('connection refused');
};
const hang = () => new Promise<Record<string, unknown>>(() => undefined);

describe('checkReadiness', () => {
  test.each([
    [{ a: ok, b: ok }, 'ok', { a: true, b: true }],
    [{ a: ok, b: fail }, 'unavailable', { a: true, b: false }],
    [{ a: hang, b: ok }, 'unavailable', { a: false, b: true }],
    [{ a: fail, b: hang }, 'unavailable', { a: false, b: false }],
  ])('%#: status %s', async (checks, status, oks) => {
    const r = await checkReadiness(checks, 50);
    expect(r.status).toBe(status);
    for (const [name, expected] of Object.entries(oks)) expect(r.checks[name]?.ok).toBe(expected);
  });

  test('names the reason and keeps details', async () => {
    const r = await checkReadiness({ db: fail, orthanc: ok, slow: hang }, 30);
    expect(r.checks['db']).toEqual({ ok: false, error: 'connection refused' });
    expect(r.checks['orthanc']).toEqual({ ok: true, version: '1' });
    expect(r.checks['slow']?.error).toMatch(/no answer within 30 ms/);
  });
});
