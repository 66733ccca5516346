import type { FastifyInstance } from 'fastify';
import { inject } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import type { Config } from '../../src/config/spec.ts';

/** The facade's configuration pointing at the throwaway stack, with optional overrides. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  const stack = inject('stack');
  const base = loadConfig({
    EHR_DATABASE_URL: stack.databaseUrl,
    EHR_ORTHANC_URL: stack.orthancUrl,
    EHR_ORTHANC_USERNAME: stack.orthancUsername,
    EHR_ORTHANC_PASSWORD: stack.orthancPassword,
    EHR_LOG_LEVEL: process.env['EHR_TEST_LOG_LEVEL'] ?? 'silent',
    // The C-STORE consumer stays off in tests unless a test turns it on (tests/change-feed-*.int.test.ts).
    EHR_CHANGE_FEED_ENABLED: 'false',
    // Events PostgreSQL cannot take spill into the throwaway stack's directory, not the working tree's .data.
    EHR_AUDIT_SPILL_DIR: `${stack.dataDir}/audit-spill`,
  });
  return { ...base, ...overrides };
}

/** Builds the real facade (no listen) against the throwaway stack. */
export async function testApp(overrides: Partial<Config> = {}): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(overrides));
  await app.ready();
  return app;
}
