/**
 * When the local stack's supervisor restarts a process that exited or hung (supervisor.ts): exponential backoff, and
 * a cap on restarts per minute after which it gives up until an operator runs `make up` again (as systemd's
 * `StartLimitBurst`). Pure.
 */

export interface RestartPolicy {
  /** Delay before the first restart of a calm service; doubles with each restart in the last minute. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Restarts allowed within {@link RestartPolicy.windowMs}; one more and the supervisor gives up on the service. */
  maxRestarts: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  maxRestarts: 5,
  windowMs: 60_000,
};

export type RestartDecision = { action: 'restart'; delayMs: number } | { action: 'give-up'; recent: number };

/** Decides what to do after an unexpected exit, given the times of earlier restarts (ms since epoch). */
export function decideRestart(restartTimes: readonly number[], now: number, policy: RestartPolicy): RestartDecision {
  const recent = restartTimes.filter((t) => now - t < policy.windowMs).length;
  if (recent >= policy.maxRestarts) return { action: 'give-up', recent };
  return { action: 'restart', delayMs: Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** recent) };
}

/** A readable exit reason: `exit code 1`, `killed by SIGKILL`, or the supervisor's own reason (hung, failed start). */
export function exitReason(code: number | null, signal: NodeJS.Signals | null, why?: string): string {
  const how = signal ? `killed by ${signal}` : `exit code ${code ?? 'unknown'}`;
  return why ? `${why} (${how})` : how;
}
