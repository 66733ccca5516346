import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive, StackError, terminate, waitFor } from './process.ts';

export const FACADE_MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

/**
 * V8 limits of the facade process (budget: RSS < 250 MB while 1 GB streams in or out). The
 * Dockerfile passes the same through NODE_OPTIONS (tests/compose.int.test.ts checks that it does).
 * - `--max-semi-space-size=16`: on a machine with this much memory Node 24's V8 lets each semi-space of the young
 *   generation grow to 64 MB (new space 128 MB), which a server allocating per request fills before scavenging;
 *   16 MB (the former default) keeps it at 32 MB.
 * - `--max-old-space-size=512`: with the default limit (~4 GB here) V8 lets the old generation grow to up to 4× its
 *   live size between major GCs; under 2 GB it uses its small-heap growing factor (≤ 2). 512 MB is still more than
 *   ten times the facade's live heap (35–45 MB).
 */
export const FACADE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16', '--max-old-space-size=512'];

/**
 * Environment defaults of the facade process (a value in the caller's environment wins).
 * - `MALLOC_ARENA_MAX=2`: glibc's per-thread malloc arenas made RSS grow under STOW-RS ingest.
 */
export const FACADE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

export interface FacadeProcess {
  dir: string;
  port: number;
  env: Record<string, string>;
}

export const facadePidFile = (f: FacadeProcess) => join(f.dir, 'facade.pid');

export function facadePid(f: FacadeProcess): number | undefined {
  if (!existsSync(facadePidFile(f))) return undefined;
  const pid = Number(readFileSync(facadePidFile(f), 'utf8'));
  return Number.isFinite(pid) && pidAlive(pid) ? pid : undefined;
}

/** Starts the facade (`node src/main.ts`) in the background and waits until `/readyz` answers 200. */
export async function startFacade(f: FacadeProcess): Promise<number> {
  const running = facadePid(f);
  if (running) return running;
  const logPath = join(f.dir, 'facade.log');
  const out = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...FACADE_NODE_FLAGS, FACADE_MAIN], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...FACADE_ENV, ...process.env, ...f.env, EHR_ENV_FILE: '/dev/null' },
  });
  const pid = child.pid;
  if (!pid) throw new StackError('the facade could not be spawned');
  child.unref();
  writeFileSync(facadePidFile(f), String(pid));
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
  rmSync(facadePidFile(f), { force: true });
}
