import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CONFIG_DOC, ConfigError, configTableMarkdown, loadConfig, withConfigTable } from './load-config.ts';
import { configVars } from './spec.ts';

const base = { EHR_DATABASE_URL: 'postgres://u:p@localhost:5433/ehr', EHR_ORTHANC_PASSWORD: 's3cret' };

describe('loadConfig', () => {
  test('applies defaults and coerces types', () => {
    const c = loadConfig(base);
    expect(c.port).toBe(8000);
    expect(c.mode).toBe('development');
    expect(c.migrateOnStart).toBe(true);
    expect(c.orthancDicomWebRoot).toBe('/dicom-web');
  });

  test.each([
    [{ EHR_PORT: '9001' }, 'port', 9001],
    [{ EHR_MIGRATE_ON_START: 'false' }, 'migrateOnStart', false],
    [{ EHR_PUBLIC_BASE_URL: 'https://ehr.example.org/' }, 'publicBaseUrl', 'https://ehr.example.org'],
    [{ EHR_ORTHANC_URL: 'http://orthanc:8042/' }, 'orthancUrl', 'http://orthanc:8042'],
    [{ EHR_MODE: 'production' }, 'mode', 'production'],
  ])('%o sets %s', (env, key, value) => {
    expect(loadConfig({ ...base, ...env })[key as keyof ReturnType<typeof loadConfig>]).toBe(value);
  });

  test.each([
    [{ EHR_DATABASE_URL: undefined }, 'EHR_DATABASE_URL', /required/],
    [{ EHR_ORTHANC_PASSWORD: '' }, 'EHR_ORTHANC_PASSWORD', /required/],
    [{ EHR_PORT: 'abc' }, 'EHR_PORT', /integer/],
    [{ EHR_PORT: '70000' }, 'EHR_PORT', /<= 65535/],
    [{ EHR_MODE: 'staging' }, 'EHR_MODE', /allowed values/],
    [{ EHR_DATABASE_URL: 'mysql://x' }, 'EHR_DATABASE_URL', /invalid format/],
    [{ EHR_PUBLIC_BASE_URL: 'localhost:8000' }, 'EHR_PUBLIC_BASE_URL', /invalid format/],
    [{ EHR_MIGRATE_ON_START: 'maybe' }, 'EHR_MIGRATE_ON_START', /boolean/],
  ])('%o fails naming %s', (env, variable, message) => {
    let err: unknown;
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).toMatch(message);
    expect((err as ConfigError).message).not.toContain('\n');
  });

  test('never echoes a secret value in an error', () => {
    expect(() => loadConfig({ ...base, EHR_DATABASE_URL: 'mysql://user:topsecret@x' })).toThrow(/\(secret\)/);
  });

  test('reads secrets from *_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'pw'), 'from-file\n');
    const c = loadConfig({ EHR_DATABASE_URL: base.EHR_DATABASE_URL, EHR_ORTHANC_PASSWORD_FILE: join(dir, 'pw') });
    expect(c.orthancPassword).toBe('from-file');
    expect(() => loadConfig({ EHR_DATABASE_URL: 'x', EHR_ORTHANC_PASSWORD_FILE: join(dir, 'missing') })).toThrow(
      /EHR_ORTHANC_PASSWORD_FILE cannot be read/,
    );
  });

  test('the markdown table lists every variable', () => {
    const table = configTableMarkdown();
    for (const v of configVars) expect(table).toContain(`\`${v.env}\``);
  });
});

describe('docs/configuration.md', () => {
  test('its configuration table is current (run `bin/ehr config doc` after changing the config spec)', () => {
    const page = readFileSync(new URL(`../../${CONFIG_DOC}`, import.meta.url), 'utf8');
    expect(page).toBe(withConfigTable(page));
  });
});

describe('the config spec', () => {
  test.each(configVars.map((v) => [v.env, v.description] as const))(
    '%s: a one-line description under 200 characters (details go to docs/configuration.md)',
    (_env, description) => {
      expect(description.length).toBeLessThan(200);
      expect(description).not.toMatch(/\n|FINDINGS|bench|migration \d/i);
    },
  );
});
