import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate } from '../src/db/migrate.ts';
import { freePort } from '../src/stack/process.ts';
import { stackDown, stackUp } from '../src/stack/stack.ts';

/** What the throwaway stack hands to the integration tests (via vitest's `inject('stack')`). */
export interface TestStack {
  dataDir: string;
  databaseUrl: string;
  orthancUrl: string;
  orthancUsername: string;
  orthancPassword: string;
  orthancDicomPort: number;
  orthancAet: string;
  pg: { dir: string; port: number };
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: TestStack;
  }
}

/**
 * Starts one throwaway copy of the real stack per run, exactly as `make up` does (private PostgreSQL 15 cluster with
 * the EHR and Orthanc databases, Orthanc with its PostgreSQL/DICOMweb/GDCM plugins), in a temp dir on free ports.
 * The facade itself is built in-process by each test file. Everything is torn down even when tests fail.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ehr-test-'));
  chmodSync(dataDir, 0o755); // the postgres system user must reach its cluster folder
  const settings = {
    dataDir,
    pgPort: await freePort(),
    orthancHttpPort: await freePort(),
    orthancDicomPort: await freePort(),
    facadePort: await freePort(),
    fsync: false,
    facade: false,
  };
  const teardown = async () => {
    await stackDown(settings).catch((err: unknown) => console.error('stack teardown failed', err));
    if (!process.env['EHR_KEEP_TEST_STACK']) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const info = await stackUp(settings);
    await migrate(info.databaseUrl);
    project.provide('stack', {
      dataDir,
      databaseUrl: info.databaseUrl,
      orthancUrl: info.orthancUrl,
      orthancUsername: info.orthanc.username,
      orthancPassword: info.orthanc.password,
      orthancDicomPort: info.orthanc.dicomPort,
      orthancAet: info.orthanc.aet,
      pg: { dir: info.pg.dir, port: info.pg.port },
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
