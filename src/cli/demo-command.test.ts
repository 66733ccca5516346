import { describe, expect, test } from 'vitest';
import { DevelopmentOnlyError } from '../auth/local-token.ts';
import { loadConfig } from '../config/load-config.ts';
import { assertDevelopment, mergeLogins } from './demo-command.ts';

const dev = loadConfig({
  EHR_MODE: 'development',
  EHR_DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/ehr',
  EHR_ORTHANC_URL: 'http://127.0.0.1:8042',
  EHR_ORTHANC_USERNAME: 'u',
  EHR_ORTHANC_PASSWORD: 'p',
});

describe('assertDevelopment', () => {
  test.each([
    { name: 'development', env: {}, force: false, refused: false },
    { name: 'NODE_ENV=production', env: { NODE_ENV: 'production' }, force: false, refused: true },
    { name: 'NODE_ENV=production --force', env: { NODE_ENV: 'production' }, force: true, refused: false },
  ])('$name', ({ env, force, refused }) => {
    const run = () => assertDevelopment(dev, env, force);
    if (refused) expect(run).toThrow(DevelopmentOnlyError);
    else expect(run).not.toThrow();
  });
  test('EHR_MODE=production is refused', () => {
    expect(() => assertDevelopment({ ...dev, mode: 'production' }, {}, false)).toThrow(DevelopmentOnlyError);
  });
});

describe('mergeLogins', () => {
  test.each([
    {
      name: 'first run: every new password',
      existing: '',
      logins: [
        { username: 'demo-admin', role: 'admin' as const, password: 'pw-admin' },
        { username: 'demo-nurse', role: 'nurse' as const, password: 'pw-nurse' },
      ],
      has: [/demo-admin\s+admin\s+pw-admin/, /demo-nurse\s+nurse\s+pw-nurse/, /development only/],
      hasNot: [],
    },
    {
      name: 'second run: existing passwords kept',
      existing: 'demo-admin         admin        pw-admin\n',
      logins: [{ username: 'demo-admin', role: 'admin' as const }],
      has: [/demo-admin\s+admin\s+pw-admin/],
      hasNot: [/unknown/],
    },
    {
      name: 'user existed before the file: said so',
      existing: '',
      logins: [{ username: 'demo-admin', role: 'admin' as const }],
      has: [/demo-admin\s+admin\s+\(unknown: user existed\)/],
      hasNot: [],
    },
  ])('$name', ({ existing, logins, has, hasNot }) => {
    const text = mergeLogins(existing, logins, 'http://localhost:8000');
    for (const re of has) expect(text).toMatch(re);
    for (const re of hasNot) expect(text).not.toMatch(re);
  });
});
