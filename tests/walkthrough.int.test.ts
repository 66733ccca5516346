/**
 * The README's walkthrough ("Ten minutes with it"), run as written: its `sh walkthrough` blocks are taken from
 * README.md and run in order in one bash, from the project folder, against a facade on the throwaway stack with the
 * demo loaded (what `make up` leaves behind). Only the environment differs from a reader's machine: `EHR_URL` points at
 * this facade, and bin/ehr gets this stack's database and Orthanc. Each command must exit 0 and print what its
 * `# → …` comment promises.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { runDemo } from '../src/cli/demo-command.ts';
import { walkthroughSteps } from '../src/docs/markdown.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';

const ROOT = join(import.meta.dirname, '..');
const steps = walkthroughSteps(readFileSync(join(ROOT, 'README.md'), 'utf8'));

interface StepResult {
  code: number | undefined;
  output: string;
}

let app: FastifyInstance;
let dataDir: string;
const results: StepResult[] = [];
let transcript = '';

const BEGIN = '@@walkthrough-step';
const END = '@@walkthrough-end';

/**
 * One bash script running the steps in order (variables carry over, as in a reader's shell), each step's output
 * framed by markers with its exit status; it stops at the first failing step.
 */
function script(): string {
  const lines = ['set -o pipefail', 'exec 2>&1'];
  steps.forEach((s, i) => {
    lines.push(`echo '${BEGIN} ${i}'`, s.command, `__rc=$?`, `echo "${END} ${i} $__rc"`, `[ $__rc = 0 ] || exit $__rc`);
  });
  return `${lines.join('\n')}\n`;
}

function runBash(text: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-s'], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(out));
    child.stdin.end(text);
  });
}

function parse(out: string): void {
  const re = new RegExp(`^${BEGIN} (\\d+)\\n([\\s\\S]*?)^${END} \\1 (\\d+)$`, 'gm');
  for (const m of out.matchAll(re)) results[Number(m[1])] = { output: m[2]!, code: Number(m[3]) };
}

beforeAll(async () => {
  const stack = inject('stack');
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const config = testConfig({ host: '127.0.0.1', port, publicBaseUrl: baseUrl });
  app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  dataDir = mkdtempSync(join(tmpdir(), 'ehr-walkthrough-'));
  // What `make up` does on a fresh data folder.
  await runDemo(config, dataDir, () => {}, { baseUrl });

  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? dataDir,
    LANG: 'C.UTF-8',
    EHR_URL: baseUrl,
    // bin/ehr reads its configuration like on the reader's machine, here pointing at this stack.
    EHR_STACK_DIR: dataDir,
    EHR_ENV_FILE: join(dataDir, 'no.env'),
    EHR_PUBLIC_BASE_URL: baseUrl,
    EHR_DATABASE_URL: stack.databaseUrl,
    EHR_ORTHANC_URL: stack.orthancUrl,
    EHR_ORTHANC_USERNAME: stack.orthancUsername,
    EHR_ORTHANC_PASSWORD: stack.orthancPassword,
    EHR_LOG_LEVEL: 'silent',
  };
  transcript = await runBash(script(), env);
  parse(transcript);
  if (process.env['EHR_WALKTHROUGH_TRANSCRIPT']) writeFileSync(process.env['EHR_WALKTHROUGH_TRANSCRIPT'], transcript);
}, 300_000);

afterAll(async () => {
  await app?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('README walkthrough', () => {
  test('has commands to run', () => {
    expect(steps.length).toBeGreaterThan(5);
  });

  test.each(steps.map((s, i) => ({ ...s, i, name: `line ${s.line}: ${s.command.slice(0, 90)}` })))(
    '$name',
    ({ i, expect: promised }) => {
      const r = results[i];
      if (!r) throw new Error(`the step did not run (an earlier one failed?); transcript:\n${transcript}`);
      expect({ code: r.code, output: r.output }).toMatchObject({ code: 0 });
      if (promised !== undefined) expect(r.output).toContain(promised);
    },
  );
});
