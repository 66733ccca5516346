/**
 * `bin/ehr stack up|down|status` on a supervised stack: `up` starts a detached supervisor process (supervisor.ts)
 * that runs PostgreSQL, Orthanc and the facade in the foreground and restarts them when they exit or hang; `down`
 * asks it to stop everything; `status` reads its state file (restarts and exit reasons included).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { goodbye } from '../db/breaker.ts';
import { FACADE_ENV, FACADE_MAIN, FACADE_NODE_FLAGS, facadePidFile, stopFacade } from './facade.ts';
import { answers, ORTHANC_BIN, orthancPidFile, prepareOrthanc, stopOrthanc } from './orthanc.ts';
import {
  clusterRunning,
  ensureRoleAndDatabase,
  initCluster,
  pgSocketDir,
  postgresCommand,
  postgresUser,
  stopCluster,
} from './postgres.ts';
import { assertPortFree, isRoot, pidAlive, StackError, terminate } from './process.ts';
import {
  describeStack,
  EHR_DB,
  loadOrCreateSecrets,
  ORTHANC_DB,
  type StackInfo,
  type StackSettings,
  writeStackFiles,
} from './stack.ts';
import { type ServiceDef, SUPERVISOR_LOG, SUPERVISOR_STATE, Supervisor, type SupervisorState } from './supervisor.ts';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const supervisorPidFile = (s: StackSettings) => join(s.dataDir, 'supervisor.pid');
/** Time a health probe of a child may take before it counts as failed. */
const PROBE_MS = 5000;

export function supervisorPid(s: StackSettings): number | undefined {
  if (!existsSync(supervisorPidFile(s))) return undefined;
  const pid = Number(readFileSync(supervisorPidFile(s), 'utf8'));
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

export function readSupervisorState(s: StackSettings): SupervisorState | undefined {
  const f = join(s.dataDir, SUPERVISOR_STATE);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as SupervisorState) : undefined;
}

function logFd(path: string): number {
  return openSync(path, 'a');
}

/** Whether PostgreSQL answers `SELECT 1` over its private socket within `timeoutMs`. */
async function pgAnswers(info: StackInfo, timeoutMs: number): Promise<boolean> {
  const client = new pg.Client({
    host: pgSocketDir(info.pg),
    port: info.pg.port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    // A server stopped right now would never answer the goodbye of `end()`: bounded, then the socket is dropped.
    await goodbye(client);
  }
}

/** The three services as the supervisor runs them (foreground processes, their probes and dependencies). */
export function serviceDefs(info: StackInfo): ServiceDef[] {
  const pidTo = (file: string) => (pid: number | undefined) =>
    pid ? writeFileSync(file, String(pid)) : rmSync(file, { force: true });
  const postgres: ServiceDef = {
    name: 'postgres',
    dependsOn: [],
    stopSignal: 'SIGINT', // fast shutdown: abort transactions, checkpoint, exit
    spawn: (): ChildProcess => {
      const [cmd, args] = postgresCommand(info.pg);
      const out = logFd(join(info.pg.dir, 'server.log'));
      return spawn(cmd, args, { stdio: ['ignore', out, out], ...(isRoot() ? postgresUser() : {}) });
    },
    answers: () => pgAnswers(info, PROBE_MS),
    afterReady: async () => {
      const secrets = loadOrCreateSecrets(info.settings.dataDir);
      await ensureRoleAndDatabase(info.pg, EHR_DB, secrets.ehrDbPassword);
      await ensureRoleAndDatabase(info.pg, ORTHANC_DB, secrets.orthancDbPassword);
    },
  };
  const orthanc: ServiceDef = {
    name: 'orthanc',
    dependsOn: ['postgres'],
    stopSignal: 'SIGTERM',
    spawn: () => {
      const { configPath, logPath } = prepareOrthanc(info.orthanc);
      const out = logFd(join(info.orthanc.dir, 'orthanc.stdout.log'));
      return spawn(ORTHANC_BIN, [`--logfile=${logPath}`, configPath], { stdio: ['ignore', out, out] });
    },
    answers: () => answers(info.orthanc, PROBE_MS),
    onPid: pidTo(orthancPidFile(info.orthanc)),
  };
  const facade: ServiceDef = {
    name: 'facade',
    dependsOn: ['postgres'],
    stopSignal: 'SIGTERM',
    spawn: () => {
      const out = logFd(join(info.settings.dataDir, 'facade.log'));
      return spawn(process.execPath, [...FACADE_NODE_FLAGS, FACADE_MAIN], {
        stdio: ['ignore', out, out],
        env: { ...FACADE_ENV, ...process.env, ...info.facadeEnv, EHR_ENV_FILE: '/dev/null' },
      });
    },
    // Liveness, not readiness: the facade stays up (answering 503) while Orthanc or the database is down.
    answers: async () => {
      const res = await fetch(`http://127.0.0.1:${info.facade.port}/healthz`, {
        signal: AbortSignal.timeout(PROBE_MS),
      });
      await res.body?.cancel();
      return res.ok;
    },
    onPid: pidTo(facadePidFile(info.facade)),
  };
  return info.settings.facade ? [postgres, orthanc, facade] : [postgres, orthanc];
}

/** The supervisor process's main (`bin/ehr stack supervise`): runs until SIGTERM/SIGINT; SIGHUP retries failed ones. */
export async function runSupervisor(dataDir: string): Promise<number> {
  const settings = JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8')) as StackSettings;
  const info = describeStack(settings, loadOrCreateSecrets(dataDir));
  // Leftovers of an unsupervised stack or of a supervisor that was killed: stop them so that the ports are free.
  await stopFacade(info.facade);
  await stopOrthanc(info.orthanc);
  if (await clusterRunning(info.pg)) await stopCluster(info.pg);
  // EHR_STACK_WATCH_MS: the watchdog's probe interval (tests shorten it; a hung child is killed after 3 failures).
  const watchIntervalMs = Number(process.env['EHR_STACK_WATCH_MS'] ?? 5000) || 5000;
  const sup = new Supervisor(serviceDefs(info), { dataDir, watchIntervalMs });
  writeFileSync(supervisorPidFile(settings), String(process.pid));
  sup.log(`supervisor started, pid ${process.pid}`);
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    sup.log(`supervisor: ${signal}: stopping the stack`);
    stopping = sup.stop().then(() => {
      sup.log('supervisor: stopped');
      rmSync(supervisorPidFile(settings), { force: true });
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => sup.retryFailed());
  await sup.run();
  return 0;
}

/**
 * Starts the supervisor (or, when it runs, asks it to retry services it gave up on) and waits until every service is
 * up. Throws with the supervisor log's tail when one fails.
 */
export async function supervisedUp(settings: StackSettings, log: (line: string) => void): Promise<StackInfo> {
  mkdirSync(settings.dataDir, { recursive: true, mode: 0o755 });
  const info = writeStackFiles(settings);
  const running = supervisorPid(settings);
  let spawnedExited = false;
  if (running) {
    process.kill(running, 'SIGHUP');
  } else {
    if (!(await clusterRunning(info.pg))) await assertPortFree(info.pg.port, 'PostgreSQL', 'EHR_STACK_PG_PORT');
    if (await initCluster(info.pg)) log(`created PostgreSQL cluster in ${info.pg.dir}`);
    rmSync(join(settings.dataDir, SUPERVISOR_STATE), { force: true });
    const out = logFd(join(settings.dataDir, SUPERVISOR_LOG));
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, 'stack', 'supervise'], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, EHR_STACK_DIR: settings.dataDir },
    });
    child.once('exit', () => (spawnedExited = true));
    child.unref();
    if (child.pid) writeFileSync(supervisorPidFile(settings), String(child.pid));
  }
  const started = Date.now();
  const tail = () =>
    existsSync(join(settings.dataDir, SUPERVISOR_LOG))
      ? readFileSync(join(settings.dataDir, SUPERVISOR_LOG), 'utf8').split('\n').filter(Boolean).slice(-8).join('\n')
      : '';
  for (;;) {
    const state = readSupervisorState(settings);
    const failed = state?.services.find((s) => s.state === 'failed');
    const gone = running ? !supervisorPid(settings) : spawnedExited;
    if (failed || gone || Date.now() - started > 180_000) {
      throw new StackError(`the stack did not come up (${settings.dataDir}/${SUPERVISOR_LOG}):\n${tail()}`);
    }
    if (state?.services.length && state.services.every((s) => s.state === 'up')) break;
    await sleep(200);
  }
  for (const s of readSupervisorState(settings)?.services ?? []) log(`${s.name.padEnd(9)} up   pid ${s.pid}`);
  return info;
}

/** Asks the supervisor to stop the stack and waits for it; stops leftovers of an unsupervised stack too. */
export async function supervisedDown(settings: StackSettings): Promise<void> {
  const pid = supervisorPid(settings);
  if (pid) await terminate(pid, 120_000);
}
