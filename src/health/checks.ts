/** Outcome of one dependency check in `/readyz`. */
export interface DependencyStatus {
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

export interface Readiness {
  status: 'ok' | 'unavailable';
  checks: Record<string, DependencyStatus>;
}

/** Runs every check concurrently, each bounded by `timeoutMs`; a check that throws or times out is a failure. */
export async function checkReadiness(
  checks: Record<string, () => Promise<Record<string, unknown>>>,
  timeoutMs: number,
): Promise<Readiness> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name): Promise<DependencyStatus> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const details = await Promise.race([checks[name]!(), timeout]);
        return { ok: true, ...details };
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out = Object.fromEntries(names.map((n, i) => [n, results[i]!]));
  return { status: results.every((r) => r.ok) ? 'ok' : 'unavailable', checks: out };
}
