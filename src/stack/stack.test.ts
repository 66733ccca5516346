import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { describeStack, settingsFromEnv } from './stack.ts';

const root = mkdtempSync(join(tmpdir(), 'stack-settings-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const secrets = { ehrDbPassword: 'a', orthancDbPassword: 'b', orthancHttpPassword: 'c' };

describe("the local stack's public base URL", () => {
  test.each([
    [{}, 'http://localhost:8000'],
    [{ EHR_PORT: '8100' }, 'http://localhost:8100'],
    [{ EHR_PUBLIC_BASE_URL: 'https://ehr.example.test/imaging' }, 'https://ehr.example.test/imaging'],
    [{ EHR_PORT: '8100', EHR_PUBLIC_BASE_URL: 'https://ehr.example.test' }, 'https://ehr.example.test'],
  ])('%j → %s', (env, expected) => {
    const info = describeStack(settingsFromEnv({ EHR_STACK_DIR: root, ...env }, root), secrets);
    expect(info.facadeEnv['EHR_PUBLIC_BASE_URL']).toBe(expected);
  });
});
