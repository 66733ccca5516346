/**
 * The facade container's healthcheck (docker-compose.yml): `node src/health/container-probe.ts [/readyz]`.
 *
 * - Exit 0 when `/readyz` answers 200 (the container is healthy; `depends_on: service_healthy` waits for this).
 * - Exit 1 otherwise. When even `/healthz` (liveness) gets no answer, the process is hung: the failure is counted in
 *   a file under /tmp, and after {@link HUNG_LIMIT} such checks in a row every process of the container is killed,
 *   so that the container exits and `restart: unless-stopped` starts it again. (Docker marks a container unhealthy
 *   but never restarts it; PID 1 is docker-init, `init: true`, which exits with its child.)
 * - A facade that answers `/healthz` but not `/readyz` (Orthanc or the database down) is NOT killed: it keeps answering
 *   503 with Retry-After and recovers by itself when the dependency is back.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export const HUNG_LIMIT = 3;
const COUNTER = '/tmp/facade-hung-checks';

/** What the probe does, given the two answers and the hung checks counted so far (pure). */
export function probeDecision(
  ready: boolean,
  live: boolean,
  hungSoFar: number,
): { exit: 0 | 1; hung: number; kill: boolean } {
  if (ready) return { exit: 0, hung: 0, kill: false };
  if (live) return { exit: 1, hung: 0, kill: false };
  const hung = hungSoFar + 1;
  return { exit: 1, hung, kill: hung >= HUNG_LIMIT };
}

async function answers(path: string): Promise<boolean> {
  const port = process.env['EHR_PORT'] || '8000';
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4000) });
    await res.body?.cancel();
    return path === '/healthz' ? true : res.ok;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const ready = await answers(process.argv[2] ?? '/readyz');
  const live = ready || (await answers('/healthz'));
  let counted = 0;
  try {
    counted = Number(readFileSync(COUNTER, 'utf8')) || 0;
  } catch {
    counted = 0;
  }
  const d = probeDecision(ready, live, counted);
  if (d.hung) writeFileSync(COUNTER, String(d.hung));
  else rmSync(COUNTER, { force: true });
  if (d.kill) {
    console.error(`facade hung: no answer to ${d.hung} liveness checks in a row; killing it for a restart`);
    rmSync(COUNTER, { force: true });
    process.kill(-1, 'SIGKILL'); // every process this user may signal, except this one
  }
  process.exit(d.exit);
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
