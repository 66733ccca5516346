import { execFileSync } from 'node:child_process';
import { orthancPid, startOrthanc, stopOrthanc } from '../../src/stack/orthanc.ts';
import { clusterPid, clusterRunning, startCluster } from '../../src/stack/postgres.ts';
import type { StackInfo } from '../../src/stack/stack.ts';

/**
 * Helpers for fault tests on a throwaway stack of their own (never the shared one of tests/global-setup.ts): bounded
 * waits, Orthanc reads, the processes of the private PostgreSQL cluster, and bringing a killed component back.
 */

/** The longest any single wait in the fault tests may take. */
export const WAIT_MS = 90_000;

export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Settles `p` within `ms` or fails: no wait in these tests is unbounded. */
export async function within<T>(what: string, p: Promise<T>, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** One throwaway stack that a test may kill, freeze and restart. */
export class FaultStack {
  readonly info: StackInfo;
  constructor(info: StackInfo) {
    this.info = info;
  }

  orthancFetch(path: string, init: RequestInit = {}): Promise<Response> {
    const basic = Buffer.from(`${this.info.orthanc.username}:${this.info.orthanc.password}`).toString('base64');
    return fetch(`${this.info.orthancUrl}${path}`, {
      ...init,
      headers: { authorization: `Basic ${basic}`, ...(init.headers ?? {}) },
      signal: AbortSignal.timeout(5000),
    });
  }

  /** SOP Instance UIDs Orthanc holds for a StudyInstanceUID (over every Orthanc study with that UID). */
  async orthancSops(studyUid: string): Promise<string[]> {
    const res = await this.orthancFetch('/tools/lookup', { method: 'POST', body: studyUid });
    if (!res.ok) throw new Error(`Orthanc lookup: ${res.status}`);
    const found = (await res.json()) as { ID: string; Type: string }[];
    const sops: string[] = [];
    for (const s of found.filter((f) => f.Type === 'Study')) {
      const r = await this.orthancFetch(`/studies/${s.ID}/instances`);
      if (!r.ok) throw new Error(`Orthanc instances: ${r.status}`);
      sops.push(
        ...((await r.json()) as { MainDicomTags: { SOPInstanceUID: string } }[]).map(
          (i) => i.MainDicomTags.SOPInstanceUID,
        ),
      );
    }
    return sops.sort();
  }

  async orthancAnswers(): Promise<boolean> {
    try {
      const res = await this.orthancFetch('/system');
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Brings PostgreSQL back (waiting for the orphaned backends of a killed postmaster to exit) and Orthanc with it. */
  async recover(): Promise<void> {
    await eventually('PostgreSQL to start again', async () => {
      if (await clusterRunning(this.info.pg)) return true;
      await startCluster(this.info.pg);
      return clusterRunning(this.info.pg);
    });
    await this.restartOrthancIfStuck();
  }

  /** Orthanc answers again, or is restarted (a killed or wedged Orthanc), within a bound. */
  async restartOrthancIfStuck(): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (await this.orthancAnswers()) return;
      if (!orthancPid(this.info.orthanc)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (!(await this.orthancAnswers())) {
      await stopOrthanc(this.info.orthanc);
      await startOrthanc(this.info.orthanc);
    }
  }

  /** Every process of the private PostgreSQL cluster (the postmaster and its children). */
  clusterPids(): number[] {
    const main = clusterPid(this.info.pg);
    if (!main) return [];
    let out = '';
    try {
      out = execFileSync('pgrep', ['-P', String(main)], { encoding: 'utf8' });
    } catch {
      // No children (pgrep exits 1).
    }
    const children = out.split('\n').filter(Boolean);
    return [main, ...children.map(Number)];
  }
}
