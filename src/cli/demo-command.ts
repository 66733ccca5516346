/**
 * `bin/ehr demo [--force]` (and `make demo`): loads the demo data into the running local stack. DEVELOPMENT ONLY:
 * it creates logins with known roles and fake patients; it refuses when EHR_MODE or NODE_ENV says production unless
 * given --force. Generated passwords are printed once and kept in `<data dir>/demo-logins.txt` (mode 0600).
 * `make up` runs it by itself on a fresh data folder (see {@link demoAfterUp}).
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createPool, type DatabasePool } from 'slonik';
import { DevelopmentOnlyError } from '../auth/local-token.ts';
import { authUrls } from '../auth/server/discovery.ts';
import type { MintContext } from '../auth/server/tokens.ts';
import { KeyStore } from '../auth/signing-keys.ts';
import { loadConfig } from '../config/load-config.ts';
import type { Config } from '../config/spec.ts';
import { UsageError } from './auth-command.ts';
import { DEMO_USERS } from './demo-data.ts';
import { type DemoLogin, type DemoResult, loadDemo, showcaseViewerUrl } from './demo.ts';

export const LOGINS_FILE = 'demo-logins.txt';
export const MARKER_FILE = 'demo.json';

const BANNER = 'DEMO DATA: development only. Fake patients, known logins; never load into a real system.';

/** Refuses production unless forced (pure). */
export function assertDevelopment(config: Config, env: Record<string, string | undefined>, force: boolean): void {
  if (force) return;
  if (config.mode === 'production' || env['NODE_ENV'] === 'production') {
    throw new DevelopmentOnlyError(
      'bin/ehr demo loads fake patients and known logins: refused in production (EHR_MODE/NODE_ENV); --force overrides',
    );
  }
}

/** The logins file's text: existing lines kept, users with a new password replaced (pure). */
export function mergeLogins(existing: string, logins: readonly DemoLogin[], baseUrl: string): string {
  const kept = new Map<string, string>();
  for (const line of existing.split('\n')) {
    const m = /^(\S+)\s+\S+\s+\S+/.exec(line);
    if (m && DEMO_USERS.some((u) => u.username === m[1])) kept.set(m[1]!, line);
  }
  for (const l of logins) {
    if (l.password) kept.set(l.username, `${l.username.padEnd(18)} ${l.role.padEnd(12)} ${l.password}`);
    else if (!kept.has(l.username))
      kept.set(l.username, `${l.username.padEnd(18)} ${l.role.padEnd(12)} (unknown: user existed)`);
  }
  return [
    `# ${BANNER}`,
    `# Log in at ${baseUrl}/auth/authorize (through an app) or mint a token: bin/ehr token --user NAME --scope 'user/*.rs'`,
    '# user               role         password',
    ...DEMO_USERS.map((u) => kept.get(u.username)).filter((x): x is string => x !== undefined),
    '',
  ].join('\n');
}

function dataDirOf(root: string, env: Record<string, string | undefined>): string {
  return resolve(root, env['EHR_STACK_DIR'] ?? '.data');
}

function mintContext(db: DatabasePool, config: Config): MintContext {
  const keys = new KeyStore(db, { alg: config.authSigningAlg, rotationDays: config.authKeyRotationDays, graceS: 0 });
  return { keys, urls: authUrls(config.publicBaseUrl), accessTokenTtlS: config.authAccessTokenTtlS };
}

/** Writes the logins file (0600) and the marker; returns the logins file's path. */
function saveDemo(dataDir: string, result: DemoResult, baseUrl: string): string {
  const file = join(dataDir, LOGINS_FILE);
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '';
  writeFileSync(file, mergeLogins(existing, result.logins, baseUrl), { mode: 0o600 });
  chmodSync(file, 0o600);
  writeFileSync(
    join(dataDir, MARKER_FILE),
    JSON.stringify(
      { loadedAt: new Date().toISOString(), showcaseOrderId: result.showcaseOrderId, orders: result.orders },
      null,
      2,
    ),
  );
  return file;
}

function printDemo(result: DemoResult, loginsFile: string, baseUrl: string, out: (l: string) => void): void {
  out(`\n*** ${BANNER} ***`);
  const created = result.logins.filter((l) => l.password);
  if (created.length) {
    out(`Logins created (passwords shown once; kept in ${loginsFile}, mode 0600):`);
    for (const l of created) out(`  ${l.username.padEnd(18)} ${l.role.padEnd(12)} ${l.password}`);
  } else {
    out(`Logins: unchanged, see ${loginsFile}`);
  }
  out('Patients and orders:');
  for (const [, p] of Object.entries(result.patients)) out(`  Patient/${p.id}  ${p.name} (MRN ${p.mrn})`);
  for (const [, o] of Object.entries(result.orders)) {
    out(
      `  ServiceRequest/${o.id}  ${o.display}, accession ${o.accession}, ${o.studies ? 'images linked' : 'no images'}`,
    );
  }
  if (result.storedInstances) out(`Stored ${result.storedInstances} DICOM instance(s) through STOW-RS.`);
  out(`A token as the demo doctor: TOKEN=$(bin/ehr token --user demo-doctor --scope 'user/*.rs')`);
  out(`  curl -H "Authorization: Bearer $TOKEN" ${baseUrl}/fhir/Patient`);
  out(`The patient portal: sign in at ${baseUrl}/app/ as demo-patient (Ada Lovelace's own record).`);
  if (result.viewerUrl) out(`Viewer link of a demo order (valid a few minutes):\n  ${result.viewerUrl}`);
}

async function withDb<T>(config: Config, f: (db: DatabasePool) => Promise<T>): Promise<T> {
  const db = await createPool(config.databaseUrl, { maximumPoolSize: 2 });
  try {
    return await f(db);
  } finally {
    await db.end();
  }
}

/** Loads the demo into the facade `config` describes and saves logins and marker under `dataDir`. */
export async function runDemo(
  config: Config,
  dataDir: string,
  out: (line: string) => void,
  opts: { pydicomDir?: string; baseUrl?: string } = {},
): Promise<DemoResult> {
  const baseUrl = opts.baseUrl ?? config.publicBaseUrl;
  const result = await withDb(config, (db) =>
    loadDemo({
      db,
      mint: mintContext(db, config),
      baseUrl,
      mrnSystem: config.fhirMrnSystem,
      accessionSystem: config.fhirAccessionSystem,
      ...(opts.pydicomDir ? { pydicomDir: opts.pydicomDir } : {}),
      log: (l) => out(`demo: ${l}`),
    }),
  );
  const file = saveDemo(dataDir, result, config.publicBaseUrl);
  printDemo(result, file, config.publicBaseUrl, out);
  return result;
}

/** `bin/ehr demo [--force]`. */
export async function demoCommand(args: string[], root: string): Promise<number> {
  const { values } = parseArgs({ args, options: { force: { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log('usage: bin/ehr demo [--force]   load the development demo into the running stack (make up first)');
    return 0;
  }
  const config = loadConfig(process.env);
  assertDevelopment(config, process.env, values.force === true);
  const dataDir = dataDirOf(root, process.env);
  if (!existsSync(dataDir)) throw new UsageError(`no stack data in ${dataDir}: run "make up" first`);
  await runDemo(config, dataDir, (l) => console.log(l));
  return 0;
}

/**
 * After `stack up`: loads the demo when the data folder was fresh (unless EHR_DEMO=0), else prints a fresh viewer
 * link of the demo's showcase order when the demo is there. Never fails the `up`: a problem is printed with a hint.
 */
export async function demoAfterUp(
  facadeEnv: Record<string, string>,
  dataDir: string,
  fresh: boolean,
  out: (line: string) => void,
): Promise<void> {
  const config = loadConfig(facadeEnv);
  const marker = join(dataDir, MARKER_FILE);
  try {
    if (fresh && process.env['EHR_DEMO'] !== '0' && !existsSync(marker)) {
      out('Fresh data folder: loading the demo (EHR_DEMO=0 skips it) ...');
      await runDemo(config, dataDir, out);
      return;
    }
    if (!existsSync(marker)) {
      out('No demo data. Load it with "make demo" (development only).');
      return;
    }
    const { showcaseOrderId } = JSON.parse(readFileSync(marker, 'utf8')) as { showcaseOrderId: string };
    const url = await withDb(config, (db) =>
      showcaseViewerUrl({ db, mint: mintContext(db, config), baseUrl: config.publicBaseUrl }, showcaseOrderId),
    );
    out(`Demo logins in ${join(dataDir, LOGINS_FILE)}. Viewer link of a demo order (valid a few minutes):\n  ${url}`);
  } catch (err) {
    out(`demo: ${(err as Error).message}\n  (retry with "make demo")`);
  }
}
