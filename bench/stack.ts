/**
 * The benchmark's throwaway stack: the project's own stack supervisor (src/stack) on free ports in bench/.work, then
 * CPU pinning as the machine facts require (Orthanc and PostgreSQL on CPU 0; the facade, the load generators and the
 * browser on CPU 1). Pinning is applied to the running processes with `taskset -a -p` (every thread); PostgreSQL
 * backends forked later inherit the postmaster's affinity, Orthanc's new threads their creator's. The stack code
 * itself stays unchanged.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type FacadeProcess, facadePid, startFacade, stopFacade } from '../src/stack/facade.ts';
import { orthancPid } from '../src/stack/orthanc.ts';
import { clusterPid } from '../src/stack/postgres.ts';
import { freePort } from '../src/stack/process.ts';
import { type StackInfo, type StackSettings, stackDown, stackUp } from '../src/stack/stack.ts';

const execFileP = promisify(execFile);

export const SERVER_CPU = 0;
export const CLIENT_CPU = 1;

export interface BenchStack {
  info: StackInfo;
  orthancBasic: string;
  facades: Map<string, RunningFacade>;
}

export interface RunningFacade {
  name: string;
  process: FacadeProcess;
  pid: number;
  baseUrl: string;
  inspectPort?: number;
}

/** Pins every thread of `pid` to `cpu`. */
export async function pin(pid: number, cpu: number): Promise<void> {
  await execFileP('taskset', ['-a', '-p', '-c', String(cpu), String(pid)]);
}

async function childrenOf(pid: number): Promise<number[]> {
  const { stdout } = await execFileP('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }));
  return stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** The CPU list a process may run on (`taskset -p`), for the report's conditions. */
export async function affinityOf(pid: number): Promise<string> {
  const { stdout } = await execFileP('taskset', ['-c', '-p', String(pid)]);
  return stdout.trim().split(':').at(-1)?.trim() ?? '?';
}

/** Starts PostgreSQL and Orthanc in a fresh folder on free ports and pins them (and every PostgreSQL process) to CPU 0. */
export async function startBenchStack(workDir: string, log: (s: string) => void): Promise<BenchStack> {
  const dataDir = join(workDir, 'stack');
  // A stack left running by BENCH_KEEP=1 (or a killed run) is stopped before its folder is wiped.
  for (const d of existsSync(workDir) ? readdirSync(workDir) : []) {
    if (d.startsWith('facade-')) await stopFacade({ dir: join(workDir, d), port: 0, env: {} });
  }
  if (existsSync(join(dataDir, 'stack.json'))) {
    await stackDown(JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8')) as StackSettings).catch(
      () => undefined,
    );
  }
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const info = await stackUp(
    {
      dataDir,
      pgPort: await freePort(),
      orthancHttpPort: await freePort(),
      orthancDicomPort: await freePort(),
      facadePort: await freePort(),
      // Durable commits as in production: the audit trail and STOW pay for them on both sides alike.
      fsync: true,
      facade: false,
    },
    log,
  );
  const postmaster = clusterPid(info.pg);
  const orthanc = orthancPid(info.orthanc);
  if (!postmaster || !orthanc) throw new Error('the benchmark stack did not start');
  await pinServers(postmaster, orthanc);
  const orthancBasic = `Basic ${Buffer.from(`${info.orthanc.username}:${info.orthanc.password}`).toString('base64')}`;
  return { info, orthancBasic, facades: new Map() };
}

/** (Re)pins the postmaster, all its current children and Orthanc to the server CPU. */
export async function pinServers(postmaster: number, orthanc: number): Promise<void> {
  for (const pid of [postmaster, ...(await childrenOf(postmaster)), orthanc]) {
    await pin(pid, SERVER_CPU).catch(() => undefined); // a backend may exit meanwhile
  }
}

export async function repinServers(s: BenchStack): Promise<void> {
  const postmaster = clusterPid(s.info.pg);
  const orthanc = orthancPid(s.info.orthanc);
  if (postmaster && orthanc) await pinServers(postmaster, orthanc);
}

export interface FacadeOptions {
  name: string;
  logLevel: string;
  /** Open the V8 inspector on this local port (per-workload CPU profiles, bench/profile.ts). */
  inspectPort?: number;
  /** Run with the audit plugin replaced by bench/audit-off-hooks.ts (audit-off comparison only). */
  auditOff?: boolean;
  /** Record read AuditEvents through the durable outbox (EHR_AUDIT_OUTBOX_DIR in the facade's directory). */
  outbox?: boolean;
  /** Shared by every facade of a run, so that one token (issuer, audience) works on all of them. */
  publicBaseUrl?: string;
  port?: number;
}

/** Environment every benchmark facade (and the in-process admin app) gets on top of the stack's. */
export const BENCH_ENV = {
  // The C-STORE change feed stays off: every benchmark instance arrives through STOW-RS, and its background polling
  // would add noise to both sides.
  EHR_CHANGE_FEED_ENABLED: 'false',
  // Tokens minted once per caller must outlive a long run (the configured maximum, one hour).
  EHR_AUTH_ACCESS_TOKEN_TTL_S: '3600',
};

/** Starts one facade process (`node src/main.ts` via the stack supervisor) on a free port, pinned to CPU 1. */
export async function startBenchFacade(s: BenchStack, workDir: string, o: FacadeOptions): Promise<RunningFacade> {
  const port = o.port ?? (await freePort());
  const dir = join(workDir, `facade-${o.name}`);
  mkdirSync(dir, { recursive: true });
  const nodeOptions: string[] = ['--disable-warning=ExperimentalWarning'];
  if (o.inspectPort) nodeOptions.push(`--inspect=127.0.0.1:${o.inspectPort}`);
  if (o.auditOff) nodeOptions.push(`--import=${new URL('./audit-off-hooks.ts', import.meta.url).href}`);
  const baseUrl = `http://127.0.0.1:${port}`;
  const proc: FacadeProcess = {
    dir,
    port,
    env: {
      ...s.info.facadeEnv,
      EHR_PORT: String(port),
      EHR_PUBLIC_BASE_URL: o.publicBaseUrl ?? baseUrl,
      EHR_LOG_LEVEL: o.logLevel,
      ...BENCH_ENV,
      ...(o.outbox ? { EHR_AUDIT_OUTBOX_DIR: join(dir, 'audit-outbox') } : {}),
      NODE_OPTIONS: nodeOptions.join(' '),
    },
  };
  writeFileSync(join(dir, 'facade.env'), `${Object.keys(proc.env).join('\n')}\n`);
  const pid = await startFacade(proc);
  await pin(pid, CLIENT_CPU);
  const f: RunningFacade = {
    name: o.name,
    process: proc,
    pid,
    baseUrl,
    ...(o.inspectPort ? { inspectPort: o.inspectPort } : {}),
  };
  s.facades.set(o.name, f);
  return f;
}

export async function stopBenchFacade(s: BenchStack, name: string): Promise<void> {
  const f = s.facades.get(name);
  if (!f) return;
  await stopFacade(f.process);
  s.facades.delete(name);
}

export async function stopBenchStack(s: BenchStack): Promise<void> {
  for (const name of [...s.facades.keys()]) await stopBenchFacade(s, name);
  await stackDown(s.info.settings);
}

/** CPU time (utime + stime, plus reaped children's) of a process from /proc/<pid>/stat, in ms; 0 when it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of proc(5) (utime, stime, cutime, cstime) are 11-14 after the command; clock ticks of 10 ms.
    return [11, 12, 13, 14].reduce((n, i) => n + Number(f[i] ?? 0), 0) * 10;
  } catch {
    return 0;
  }
}

/**
 * CPU time used so far by the server side (PostgreSQL: postmaster, every backend and what it reaped; Orthanc), in ms:
 * the difference over a run, divided by its requests, is the server-CPU cost of one request.
 */
export async function serverCpuMs(s: BenchStack): Promise<number> {
  const postmaster = clusterPid(s.info.pg);
  const orthanc = orthancPid(s.info.orthanc);
  if (!postmaster || !orthanc) return 0;
  const pids = [postmaster, ...(await childrenOf(postmaster)), orthanc];
  return pids.reduce((n, pid) => n + cpuMsOf(pid), 0);
}

/** Memory of a process from /proc: current and peak resident set (kB → MB). */
export function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/** Resets the kernel's peak-RSS counter (VmHWM) of a process (`echo 5 > /proc/pid/clear_refs`). */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak seen (and the kernel's VmHWM). */
export function sampleRss(pid: number, everyMs = 20): { stop: () => Promise<{ peakMb: number; hwmMb: number }> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      if (!existsSync(`/proc/${pid}`)) break;
      peak = Math.max(peak, memoryOf(pid).rssMb);
      await sleep(everyMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { peakMb: Math.max(peak, memoryOf(pid).rssMb), hwmMb: memoryOf(pid).hwmMb };
    },
  };
}

export { facadePid };
