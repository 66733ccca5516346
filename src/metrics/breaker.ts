/**
 * The state of each dependency's circuit breaker (src/resilience/circuit-breaker.ts) as a Prometheus gauge,
 * `ehr_breaker_state{dependency}`: 0 closed (requests pass), 0.5 half-open (a probe is out), 1 open (requests fail fast
 * with 503). A value rather than a `state` label keeps one series per dependency, so `max_over_time` shows any opening
 * within a scrape window and an alert is simply `ehr_breaker_state > 0`.
 */
import type { BreakerState } from '../resilience/circuit-breaker.ts';
import { type GaugeSample, registerGauge } from './registry.ts';

export const BREAKER_STATE_METRIC = 'ehr_breaker_state';

const VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 0.5, open: 1 };

/** The gauge value of a breaker state. */
export function breakerStateValue(state: BreakerState): number {
  return VALUE[state];
}

/** One sample per breaker, labelled with the dependency it guards (`orthanc`, `database`). */
export function breakerSamples(breakers: readonly { name: string; state: BreakerState }[]): GaugeSample[] {
  return breakers.map((b) => ({ labels: { dependency: b.name }, value: breakerStateValue(b.state) }));
}

/** Registers (or replaces) the breaker gauge, read at scrape time from `breakers()`. */
export function registerBreakerGauge(breakers: () => readonly { name: string; state: BreakerState }[]): void {
  registerGauge(
    BREAKER_STATE_METRIC,
    'Circuit breaker of each dependency: 0 closed, 0.5 half-open (probing), 1 open (requests fail fast with 503).',
    ['dependency'],
    () => breakerSamples(breakers()),
  );
}
