import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive, StackError, terminate, waitFor } from './process.ts';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

export interface FacadeProcess {
  dir: string;
  port: number;
  env: Record<string, string>;
}

const pidFile = (f: FacadeProcess) => join(f.dir, 'facade.pid');

export function facadePid(f: FacadeProcess): number | undefined {
  if (!existsSync(pidFile(f))) return undefined;
  const pid = Number(readFileSync(pidFile(f), 'utf8'));
  return Number.isFinite(pid) && pidAlive(pid) ? pid : undefined;
}

/** Starts the facade (`node src/main.ts`) in the background and waits until `/readyz` answers 200. */
export async function startFacade(f: FacadeProcess): Promise<number> {
  const running = facadePid(f);
  if (running) return running;
  const logPath = join(f.dir, 'facade.log');
  const out = openSync(logPath, 'a');
  const child = spawn(process.execPath, [MAIN], {
    detached: true,
    stdio: ['ignore', out, out],
    // MALLOC_ARENA_MAX=2 bounds glibc's per-thread arenas (RSS under ingest, bench/FINDINGS.md §6).
    env: { MALLOC_ARENA_MAX: '2', ...process.env, ...f.env, EHR_ENV_FILE: '/dev/null' },
  });
  const pid = child.pid;
  if (!pid) throw new StackError('the facade could not be spawned');
  child.unref();
  writeFileSync(pidFile(f), String(pid));
  try {
    await waitFor(
      `the facade on port ${f.port}`,
      async () => {
        if (!pidAlive(pid)) throw new StackError('exited');
        const res = await fetch(`http://127.0.0.1:${f.port}/readyz`, { signal: AbortSignal.timeout(3000) });
        await res.body?.cancel();
        return res.ok;
      },
      60_000,
    );
  } catch {
    await terminate(pid, 5000);
    const tail = readFileSync(logPath, 'utf8').split('\n').filter(Boolean).slice(-5);
    throw new StackError(`the facade failed to start (see ${logPath}): ${tail.join(' | ')}`);
  }
  return pid;
}

export async function stopFacade(f: FacadeProcess): Promise<void> {
  const pid = facadePid(f);
  if (pid) await terminate(pid, 15_000);
  rmSync(pidFile(f), { force: true });
}
