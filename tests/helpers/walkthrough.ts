/**
 * The README's walkthrough ("Ten minutes with it"), run as written: its `sh walkthrough` blocks are taken from
 * README.md and run in order in one bash, from the project folder, against a facade with the demo loaded (what
 * `make up` leaves behind). Only the environment differs from a reader's machine: `EHR_URL` points at the facade, and
 * bin/ehr gets the test stack's database and Orthanc. tests/demo.int.test.ts runs it right after checking the demo's
 * first load, on the same facade and data: the walkthrough needs the demo, and the demo's first load must come first.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkthroughSteps } from '../../src/docs/markdown.ts';

const ROOT = join(import.meta.dirname, '..', '..');
export const steps = walkthroughSteps(readFileSync(join(ROOT, 'README.md'), 'utf8'));

export interface StepResult {
  code: number | undefined;
  output: string;
}

export interface WalkthroughRun {
  /** Per step, in order; missing after the first failing step. */
  results: StepResult[];
  transcript: string;
}

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

function parse(out: string): StepResult[] {
  const results: StepResult[] = [];
  const re = new RegExp(`^${BEGIN} (\\d+)\\n([\\s\\S]*?)^${END} \\1 (\\d+)$`, 'gm');
  for (const m of out.matchAll(re)) results[Number(m[1])] = { output: m[2]!, code: Number(m[3]) };
  return results;
}

/** Runs the walkthrough against `baseUrl` (whose public base URL it is), bin/ehr on `stack` with `dataDir`. */
export async function runWalkthrough(opts: {
  baseUrl: string;
  dataDir: string;
  stack: { databaseUrl: string; orthancUrl: string; orthancUsername: string; orthancPassword: string };
}): Promise<WalkthroughRun> {
  const { baseUrl, dataDir, stack } = opts;
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
  const transcript = await runBash(script(), env);
  return { results: parse(transcript), transcript };
}
