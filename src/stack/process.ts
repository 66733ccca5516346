import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { EhrError, type ErrorCode } from '../errors/base.ts';

const execFileP = promisify(execFile);

/** A stack component failed to start or stop; the message says which and why. */
export class StackError extends EhrError {
  override readonly code: ErrorCode = 'EHR_STACK';
  override name = 'StackError';
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs a command, as the `postgres` system user when we are root (initdb refuses root). */
export async function run(cmd: string, args: string[], opts: { asPostgres?: boolean } = {}): Promise<string> {
  const [file, argv] = opts.asPostgres && isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  try {
    const { stdout } = await execFileP(file, argv, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new StackError(`${cmd} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}`);
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends SIGTERM and waits until the process has really exited (SIGKILL after `timeoutMs`). */
export async function terminate(pid: number, timeoutMs = 30_000): Promise<void> {
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      await sleep(200);
      return;
    }
    await sleep(50);
  }
}

/** Resolves when something already listens on the port (on any local address). */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(true));
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve(false)));
  });
}

/** Throws a clear message naming the port and the variable that moves it. */
export async function assertPortFree(port: number, what: string, variable: string): Promise<void> {
  if (await portInUse(port)) {
    throw new StackError(`port ${port} (${what}) is already in use; free it or set ${variable} to another port`);
  }
}

/** A free TCP port chosen by the kernel (for throwaway test stacks). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Polls `probe` until it returns true, or throws after `timeoutMs` with `what` in the message. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new StackError(`${what} did not become ready within ${Math.round(timeoutMs / 1000)} s`);
}

/** The pids of `pid`'s descendants (children, grandchildren...), from /proc (Linux); empty elsewhere. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may contain spaces, hence lastIndexOf.
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}
