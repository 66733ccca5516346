import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type FacadeProcess, facadePid, startFacade, stopFacade } from './facade.ts';
import { type OrthancInstance, orthancPid, startOrthanc, stopOrthanc } from './orthanc.ts';
import {
  clusterPid,
  clusterRunning,
  databaseUrl,
  ensureRoleAndDatabase,
  initCluster,
  type PgCluster,
  startCluster,
  stopCluster,
} from './postgres.ts';
import { assertPortFree } from './process.ts';

/** Where and on which ports the local stack runs. Persisted in `<dataDir>/stack.json` by `up`. */
export interface StackSettings {
  dataDir: string;
  pgPort: number;
  orthancHttpPort: number;
  orthancDicomPort: number;
  facadePort: number;
  /** `EHR_PUBLIC_BASE_URL` of the facade; `http://localhost:<facadePort>` when unset. */
  publicBaseUrl?: string | undefined;
  /** Throwaway test stacks only. */
  fsync: boolean;
  /** Start the facade process too (the test harness builds the app in-process instead). */
  facade: boolean;
}

/** Generated on first `up`, kept in `<dataDir>/secrets.json` (mode 0600), never committed. */
export interface StackSecrets {
  ehrDbPassword: string;
  orthancDbPassword: string;
  orthancHttpPassword: string;
}

export interface StackInfo {
  settings: StackSettings;
  pg: PgCluster;
  orthanc: OrthancInstance;
  facade: FacadeProcess;
  databaseUrl: string;
  orthancUrl: string;
  /** Environment for the facade process: also written to `<dataDir>/facade.env` for `bin/ehr`. */
  facadeEnv: Record<string, string>;
}

export const EHR_DB = 'ehr';
export const ORTHANC_DB = 'orthanc';
export const ORTHANC_USER = 'facade';

function int(env: Record<string, string | undefined>, name: string, def: number): number {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name} must be a port number (got "${v}")`);
  return n;
}

/** Settings from the environment (`EHR_STACK_*`, `EHR_PORT`), falling back to what the last `up` persisted. */
export function settingsFromEnv(env: Record<string, string | undefined>, root: string): StackSettings {
  const dataDir = resolve(root, env['EHR_STACK_DIR'] ?? '.data');
  const saved = existsSync(join(dataDir, 'stack.json'))
    ? (JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8')) as Partial<StackSettings>)
    : {};
  return {
    dataDir,
    pgPort: int(env, 'EHR_STACK_PG_PORT', saved.pgPort ?? 5433),
    orthancHttpPort: int(env, 'EHR_STACK_ORTHANC_HTTP_PORT', saved.orthancHttpPort ?? 8042),
    orthancDicomPort: int(env, 'EHR_STACK_ORTHANC_DICOM_PORT', saved.orthancDicomPort ?? 4242),
    facadePort: int(env, 'EHR_PORT', saved.facadePort ?? 8000),
    publicBaseUrl: env['EHR_PUBLIC_BASE_URL'] || saved.publicBaseUrl,
    fsync: true,
    facade: true,
  };
}

function secret(): string {
  return randomBytes(24).toString('base64url');
}

export function loadOrCreateSecrets(dataDir: string): StackSecrets {
  const file = join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as StackSecrets;
  const s: StackSecrets = { ehrDbPassword: secret(), orthancDbPassword: secret(), orthancHttpPassword: secret() };
  writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  return s;
}

/** Derives every component's description from settings and secrets (pure). */
export function describeStack(settings: StackSettings, secrets: StackSecrets): StackInfo {
  const pg: PgCluster = { dir: join(settings.dataDir, 'postgres'), port: settings.pgPort, fsync: settings.fsync };
  const orthanc: OrthancInstance = {
    dir: join(settings.dataDir, 'orthanc'),
    httpPort: settings.orthancHttpPort,
    dicomPort: settings.orthancDicomPort,
    aet: 'EHR_ORTHANC',
    username: ORTHANC_USER,
    password: secrets.orthancHttpPassword,
    db: {
      host: '127.0.0.1',
      port: pg.port,
      database: ORTHANC_DB,
      username: ORTHANC_DB,
      password: secrets.orthancDbPassword,
    },
  };
  const ehrUrl = databaseUrl(pg, EHR_DB, secrets.ehrDbPassword);
  const orthancUrl = `http://127.0.0.1:${settings.orthancHttpPort}`;
  const facadeEnv: Record<string, string> = {
    EHR_MODE: 'development',
    EHR_HOST: '127.0.0.1',
    EHR_PORT: String(settings.facadePort),
    EHR_PUBLIC_BASE_URL: settings.publicBaseUrl ?? `http://localhost:${settings.facadePort}`,
    EHR_DATABASE_URL: ehrUrl,
    EHR_ORTHANC_URL: orthancUrl,
    EHR_ORTHANC_USERNAME: ORTHANC_USER,
    EHR_ORTHANC_PASSWORD: secrets.orthancHttpPassword,
  };
  const facade: FacadeProcess = { dir: settings.dataDir, port: settings.facadePort, env: facadeEnv };
  return { settings, pg, orthanc, facade, databaseUrl: ehrUrl, orthancUrl, facadeEnv };
}

function envFile(env: Record<string, string>): string {
  return `${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;
}

/** Creates the data folder, the secrets (once), `stack.json` and `facade.env`; returns the stack's description. */
export function writeStackFiles(settings: StackSettings): StackInfo {
  mkdirSync(settings.dataDir, { recursive: true, mode: 0o755 });
  const info = describeStack(settings, loadOrCreateSecrets(settings.dataDir));
  writeFileSync(join(settings.dataDir, 'stack.json'), JSON.stringify({ ...settings }, null, 2));
  writeFileSync(join(settings.dataDir, 'facade.env'), envFile(info.facadeEnv), { mode: 0o600 });
  return info;
}

/**
 * Starts the stack unsupervised (idempotent; the test harness uses it, `bin/ehr stack up` runs the supervised stack
 * of supervised.ts instead): the private PostgreSQL 15 cluster with the EHR and Orthanc databases (separate roles
 * and passwords), Orthanc with its PostgreSQL/DICOMweb/GDCM plugins, and the facade.
 */
export async function stackUp(
  settings: StackSettings,
  log: (line: string) => void = () => undefined,
): Promise<StackInfo> {
  const info = writeStackFiles(settings);
  const secrets = loadOrCreateSecrets(settings.dataDir);

  if (!(await clusterRunning(info.pg))) {
    await assertPortFree(info.pg.port, 'PostgreSQL', 'EHR_STACK_PG_PORT');
    if (await initCluster(info.pg)) log(`created PostgreSQL cluster in ${info.pg.dir}`);
    await startCluster(info.pg);
  }
  await ensureRoleAndDatabase(info.pg, EHR_DB, secrets.ehrDbPassword);
  await ensureRoleAndDatabase(info.pg, ORTHANC_DB, secrets.orthancDbPassword);
  log(`postgres  up   port ${info.pg.port} (databases ${EHR_DB}, ${ORTHANC_DB})`);

  if (!orthancPid(info.orthanc)) {
    await assertPortFree(info.orthanc.httpPort, 'Orthanc HTTP', 'EHR_STACK_ORTHANC_HTTP_PORT');
    await assertPortFree(info.orthanc.dicomPort, 'Orthanc DICOM', 'EHR_STACK_ORTHANC_DICOM_PORT');
  }
  await startOrthanc(info.orthanc);
  log(`orthanc   up   port ${info.orthanc.httpPort} (DICOM ${info.orthanc.dicomPort}, AET ${info.orthanc.aet})`);

  if (settings.facade) {
    if (!facadePid(info.facade)) await assertPortFree(info.facade.port, 'facade', 'EHR_PORT');
    await startFacade(info.facade);
    log(`facade    up   port ${info.facade.port}`);
  }
  return info;
}

/** Stops the facade, Orthanc and PostgreSQL, waiting until each has really exited. Data is kept. */
export async function stackDown(settings: StackSettings): Promise<void> {
  if (!existsSync(join(settings.dataDir, 'secrets.json'))) return;
  const info = describeStack(settings, loadOrCreateSecrets(settings.dataDir));
  await stopFacade(info.facade);
  await stopOrthanc(info.orthanc);
  await stopCluster(info.pg);
}

export interface ComponentStatus {
  name: string;
  up: boolean;
  pid?: number;
  port: number;
}

export async function stackStatus(settings: StackSettings): Promise<ComponentStatus[]> {
  const secrets: StackSecrets = existsSync(join(settings.dataDir, 'secrets.json'))
    ? loadOrCreateSecrets(settings.dataDir)
    : { ehrDbPassword: '', orthancDbPassword: '', orthancHttpPassword: '' };
  const info = describeStack(settings, secrets);
  const pgUp = await clusterRunning(info.pg).catch(() => false);
  const status = (name: string, pid: number | undefined, port: number, up = pid !== undefined): ComponentStatus =>
    pid === undefined ? { name, up, port } : { name, up, pid, port };
  return [
    status('postgres', pgUp ? clusterPid(info.pg) : undefined, info.pg.port, pgUp),
    status('orthanc', orthancPid(info.orthanc), info.orthanc.httpPort),
    status('facade', facadePid(info.facade), info.facade.port),
  ];
}
