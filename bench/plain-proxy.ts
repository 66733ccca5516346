/**
 * Starts bench/auth-proxy.ts, the plain streaming proxy a user could put in front of Orthanc instead of the facade
 * (keep-alive, no authorization, no audit), as its own process pinned to the client CPU like the facade.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/stack/process.ts';
import type { Ctx } from './context.ts';
import { CLIENT_CPU } from './stack.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface PlainProxy {
  /** `http://127.0.0.1:port` */
  base: string;
  child: ChildProcess;
}

export async function startPlainProxy(ctx: Ctx): Promise<PlainProxy> {
  const port = await freePort();
  const child = spawn(
    'taskset',
    [
      '-c',
      String(CLIENT_CPU),
      process.execPath,
      join(ROOT, 'bench', 'auth-proxy.ts'),
      String(port),
      ctx.stack.info.orthancUrl,
      ctx.stack.orthancBasic,
      join(ROOT, '.tools', 'ohif', 'dist'),
      join(ROOT, 'ohif-config', 'app-config.js'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the plain proxy did not start')), 15_000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`the plain proxy exited with ${code}`)));
  });
  return { base: `http://127.0.0.1:${port}`, child };
}
