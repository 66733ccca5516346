/**
 * The local stack's supervisor: one long-lived process (started detached by `bin/ehr stack up`) that runs PostgreSQL,
 * Orthanc and the facade as its foreground children and restarts whichever exits unexpectedly, with exponential
 * backoff and a cap on restarts per minute (restart-policy.ts). A watchdog probes each running child; one that stops
 * answering (hung, SIGSTOP, wedged on a lock) is killed with SIGKILL and restarted like a crash. A child is started
 * only once the services it depends on are up, and is not killed by the watchdog while they are down (Orthanc stalls
 * while its PostgreSQL index is away; that is PostgreSQL's fault, not Orthanc's).
 *
 * Every start, exit (with its reason) and restart goes to `<dataDir>/supervisor.log`; the current state, with the
 * restart history, to `<dataDir>/supervisor.json`, which `bin/ehr stack status` reads.
 */
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants } from './process.ts';
import { DEFAULT_RESTART_POLICY, decideRestart, exitReason, type RestartPolicy } from './restart-policy.ts';

export interface ServiceDef {
  name: string;
  dependsOn: readonly string[];
  /** Starts the service in the foreground (its exit is the service's exit). */
  spawn(): ChildProcess;
  /** Resolves true once the service answers; bounded by its own time-out. Used for readiness and the watchdog. */
  answers(): Promise<boolean>;
  /** Run once after each start, when it answers (e.g. create roles). */
  afterReady?: () => Promise<void>;
  /** Signal for an orderly stop (PostgreSQL: SIGINT, fast shutdown). */
  stopSignal: NodeJS.Signals;
  /** Told the pid of each new child, and undefined when it exited (pid files of the unsupervised tools). */
  onPid?: (pid: number | undefined) => void;
  startTimeoutMs?: number;
}

export type ServiceState = 'waiting' | 'starting' | 'up' | 'backoff' | 'failed' | 'stopped';

export interface Restart {
  at: string;
  reason: string;
}

export interface ServiceRecord {
  name: string;
  state: ServiceState;
  pid?: number | undefined;
  since: string;
  restarts: Restart[];
  lastExit?: string | undefined;
}

export interface SupervisorState {
  pid: number;
  startedAt: string;
  services: ServiceRecord[];
}

export interface SupervisorOptions {
  dataDir: string;
  policy?: RestartPolicy;
  /** Watchdog: probe interval and failed probes in a row before a child counts as hung. */
  watchIntervalMs?: number;
  watchFailures?: number;
  /** Longest a health probe may take before it counts as failed (the probes bound themselves too). */
  probeTimeoutMs?: number;
}

export const SUPERVISOR_STATE = 'supervisor.json';
export const SUPERVISOR_LOG = 'supervisor.log';
/** Restart entries kept per service in the state file. */
const KEPT_RESTARTS = 50;

export class Supervisor {
  readonly #defs: ServiceDef[];
  readonly #records = new Map<string, ServiceRecord>();
  readonly #children = new Map<string, ChildProcess>();
  readonly #times = new Map<string, number[]>();
  readonly #opts: Required<SupervisorOptions>;
  readonly #startedAt = new Date().toISOString();
  #stopping = false;
  /** Failed health probes in a row per running service (a dependent is not blamed while its dependency fails). */
  readonly #failing = new Map<string, number>();
  #wake: () => void = () => undefined;

  constructor(defs: ServiceDef[], opts: SupervisorOptions) {
    this.#defs = defs;
    this.#opts = {
      policy: DEFAULT_RESTART_POLICY,
      watchIntervalMs: 5000,
      watchFailures: 3,
      probeTimeoutMs: 10_000,
      ...opts,
    };
    for (const d of defs) {
      this.#records.set(d.name, { name: d.name, state: 'waiting', since: this.#startedAt, restarts: [] });
      this.#times.set(d.name, []);
    }
  }

  log(line: string): void {
    appendFileSync(join(this.#opts.dataDir, SUPERVISOR_LOG), `${new Date().toISOString()} ${line}\n`);
  }

  /** Runs every service until {@link stop}. */
  async run(): Promise<void> {
    this.#save();
    await Promise.all(this.#defs.map((d) => this.#supervise(d)));
  }

  /** Gives services the supervisor gave up on a fresh start (`make up` again). */
  retryFailed(): void {
    for (const r of this.#records.values()) {
      if (r.state !== 'failed') continue;
      this.#times.set(r.name, []);
      this.#set(r.name, { state: 'waiting' });
      this.log(`${r.name}: retrying after an operator's "up"`);
    }
    this.#wake();
  }

  /** Stops the facade, then Orthanc, then PostgreSQL (reverse order), each waiting for its exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake();
    for (const d of [...this.#defs].reverse()) {
      const child = this.#children.get(d.name);
      if (child && child.exitCode === null && child.signalCode === null) {
        this.log(`${d.name}: stopping (${d.stopSignal})`);
        const exited = new Promise((r) => child.once('exit', r));
        child.kill(d.stopSignal);
        child.kill('SIGCONT'); // a stopped (SIGSTOP) process acts on the signal only once continued
        const done = await Promise.race([exited.then(() => true), sleep(60_000).then(() => false)]);
        if (!done) child.kill('SIGKILL');
      }
      this.#set(d.name, { state: 'stopped', pid: undefined });
    }
  }

  state(): SupervisorState {
    return { pid: process.pid, startedAt: this.#startedAt, services: [...this.#records.values()] };
  }

  #set(name: string, patch: Partial<ServiceRecord>): void {
    const r = this.#records.get(name)!;
    if (patch.state && patch.state !== r.state) r.since = new Date().toISOString();
    Object.assign(r, patch);
    this.#save();
  }

  #save(): void {
    const file = join(this.#opts.dataDir, SUPERVISOR_STATE);
    writeFileSync(`${file}.tmp`, JSON.stringify(this.state(), null, 2));
    renameSync(`${file}.tmp`, file);
  }

  #up(name: string): boolean {
    return this.#records.get(name)?.state === 'up';
  }

  /** Up and answering its health probes. */
  #healthy(name: string): boolean {
    return this.#up(name) && !this.#failing.get(name);
  }

  /** Sleeps `ms` or until woken (stop, retry). */
  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async #supervise(d: ServiceDef): Promise<void> {
    while (!this.#stopping) {
      const rec = this.#records.get(d.name)!;
      if (rec.state === 'failed' || !d.dependsOn.every((n) => this.#up(n))) {
        await sleep(250);
        continue;
      }
      this.#set(d.name, { state: 'starting' });
      const child = d.spawn();
      this.#children.set(d.name, child);
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal }));
        child.once('error', () => resolve({ code: null, signal: null }));
      });
      this.#set(d.name, { pid: child.pid });
      d.onPid?.(child.pid);
      this.log(`${d.name}: started, pid ${child.pid}`);
      let why: string | undefined;
      let exited = false;
      void exit.then(() => (exited = true));
      const ready = await this.#waitReady(d, () => exited);
      if (ready && !exited && !this.#stopping) {
        try {
          // Bounded: a server that hangs right after answering (SIGSTOP) must not wedge the supervisor.
          await withTimeout(d.afterReady?.(), d.startTimeoutMs ?? 60_000, 'set-up after start timed out');
          this.#set(d.name, { state: 'up' });
          this.log(`${d.name}: up`);
        } catch (err) {
          why = `set-up after start failed: ${(err as Error).message}`;
          killTree(child);
        }
      } else if (!exited && !this.#stopping) {
        why = 'did not answer within the start time-out';
        killTree(child);
      }
      const watch = this.#watch(d, child, (reason) => (why = reason));
      const { code, signal } = await exit;
      watch.stop();
      d.onPid?.(undefined);
      this.#children.delete(d.name);
      if (this.#stopping) break;
      const reason = exitReason(code, signal, why);
      const now = Date.now();
      const decision = decideRestart(this.#times.get(d.name)!, now, this.#opts.policy);
      if (decision.action === 'give-up') {
        this.log(`${d.name}: exited unexpectedly: ${reason}; ${decision.recent} restarts in the last minute: gave up`);
        this.#set(d.name, { state: 'failed', pid: undefined, lastExit: reason });
        continue;
      }
      this.#times.get(d.name)!.push(now);
      const restarts = [...rec.restarts, { at: new Date(now).toISOString(), reason }].slice(-KEPT_RESTARTS);
      this.log(`${d.name}: exited unexpectedly: ${reason}; restarting in ${decision.delayMs} ms`);
      this.#set(d.name, { state: 'backoff', pid: undefined, lastExit: reason, restarts });
      await this.#pause(decision.delayMs);
    }
  }

  /** The service's probe, bounded here too: a probe stuck on a hung server must not silence the watchdog. */
  async #answers(d: ServiceDef): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#opts.probeTimeoutMs);
    });
    try {
      return await Promise.race([d.answers().catch(() => false), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #waitReady(d: ServiceDef, exited: () => boolean): Promise<boolean> {
    const deadline = Date.now() + (d.startTimeoutMs ?? 60_000);
    while (Date.now() < deadline && !exited() && !this.#stopping) {
      if (await this.#answers(d)) return true;
      await sleep(200);
    }
    return false;
  }

  /** Kills `child` with SIGKILL after `watchFailures` failed probes in a row while its dependencies are up. */
  #watch(d: ServiceDef, child: ChildProcess, hung: (reason: string) => void): { stop(): void } {
    let failures = 0;
    let busy = false;
    let killed = false;
    const timer = setInterval(async () => {
      if (busy || killed || !this.#up(d.name)) return;
      busy = true;
      const ok = await this.#answers(d);
      busy = false;
      // Orthanc stalls while PostgreSQL is away: failures while a dependency is unhealthy are not Orthanc's.
      const blameless = !d.dependsOn.every((n) => this.#healthy(n));
      failures = ok || blameless ? 0 : failures + 1;
      this.#failing.set(d.name, ok ? 0 : Math.max(1, failures));
      if (failures >= this.#opts.watchFailures && child.exitCode === null && !this.#stopping) {
        const reason = `no answer to ${failures} health checks in a row (hung)`;
        this.log(`${d.name}: ${reason}; killing pid ${child.pid}`);
        killed = true;
        hung(reason);
        killTree(child);
      }
    }, this.#opts.watchIntervalMs);
    return {
      stop: () => {
        clearInterval(timer);
        this.#failing.delete(d.name);
      },
    };
  }
}

/** SIGKILL to a child and everything under it: PostgreSQL's backends would otherwise keep its shared memory. */
function killTree(child: ChildProcess): void {
  if (!child.pid) return;
  for (const pid of [child.pid, ...descendants(child.pid)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function withTimeout(work: Promise<void> | undefined, ms: number, message: string): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
