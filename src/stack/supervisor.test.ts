import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, test } from 'vitest';
import { type ServiceDef, SUPERVISOR_LOG, Supervisor } from './supervisor.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A real child process: `node -e <code>`. */
function service(name: string, code: string, answers: () => Promise<boolean>, dependsOn: string[] = []): ServiceDef {
  return {
    name,
    dependsOn,
    stopSignal: 'SIGTERM',
    spawn: () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }),
    answers,
    startTimeoutMs: 5000,
  };
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const policy = { baseDelayMs: 10, maxDelayMs: 40, maxRestarts: 3, windowMs: 60_000 };

test.each([
  ['crashing at once', 'process.exit(1)', 'exit code 1'],
  ['killed', 'process.kill(process.pid, "SIGKILL")', 'killed by SIGKILL'],
])(
  'a service %s is restarted with backoff, then given up on after the cap',
  async (_name, code, reason) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sup-'));
    dirs.push(dataDir);
    const sup = new Supervisor([service('a', `setTimeout(() => { ${code} }, 100)`, async () => true)], {
      dataDir,
      policy,
      watchIntervalMs: 1000,
    });
    const running = sup.run();
    try {
      await until('give-up', () => sup.state().services[0]?.state === 'failed', 30_000);
      const a = sup.state().services[0]!;
      expect(a.restarts.map((r) => r.reason)).toEqual([reason, reason, reason]);
      expect(a.lastExit).toBe(reason);
      const log = readFileSync(join(dataDir, SUPERVISOR_LOG), 'utf8');
      expect(log).toMatch(/a: exited unexpectedly: .*restarting in 10 ms/);
      expect(log).toMatch(/gave up/);
      // `make up` again: a fresh start.
      sup.retryFailed();
      await until('restart after retry', () => sup.state().services[0]?.state !== 'failed');
    } finally {
      await sup.stop();
      await running;
    }
  },
  40_000,
);

test('a hung service is killed and restarted; its dependents are not blamed meanwhile', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sup-'));
  dirs.push(dataDir);
  let dbAnswers = true;
  let appProbes = 0;
  const sup = new Supervisor(
    [
      service('db', 'setInterval(() => {}, 1000)', async () => dbAnswers),
      // The app stops answering whenever the db does (as Orthanc stalls while PostgreSQL hangs).
      service(
        'app',
        'setInterval(() => {}, 1000)',
        async () => {
          appProbes++;
          return dbAnswers;
        },
        ['db'],
      ),
    ],
    { dataDir, policy, watchIntervalMs: 30, watchFailures: 3 },
  );
  const running = sup.run();
  try {
    await until('both up', () => sup.state().services.every((s) => s.state === 'up'), 30_000);
    const appPid = sup.state().services[1]!.pid;
    dbAnswers = false;
    await until('db restarted', () => (sup.state().services[0]?.restarts.length ?? 0) === 1);
    expect(sup.state().services[0]!.restarts[0]!.reason).toMatch(/no answer to 3 health checks in a row \(hung\)/);
    dbAnswers = true;
    await until('both up again', () => sup.state().services.every((s) => s.state === 'up'), 30_000);
    expect(appProbes).toBeGreaterThan(0);
    expect(sup.state().services[1]).toMatchObject({ pid: appPid, restarts: [] });
  } finally {
    await sup.stop();
    await running;
  }
  expect(sup.state().services.map((s) => s.state)).toEqual(['stopped', 'stopped']);
}, 40_000);
