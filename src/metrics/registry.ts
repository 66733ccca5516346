/**
 * The facade's Prometheus metrics (https://prometheus.io/docs/instrumenting/exposition_formats/), kept with
 * prom-client in one process-wide registry so that code without access to the Fastify instance (the database pool's
 * interceptor, the outbound HTTP listener) can record into it.
 *
 * Names follow https://prometheus.io/docs/practices/naming/: `ehr_` prefix, base units (seconds), `_total` counters.
 * Other parts plug in their own values through {@link registerGauge} (a gauge read at scrape time), e.g. the state of
 * the circuit breakers (breaker.ts): `registerGauge('ehr_breaker_state', 'help', ['dependency'], () => [...])`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets (seconds) for requests and upstream calls: 1 ms … 30 s. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const registry = new Registry();
// Node's process and runtime metrics (CPU, memory, event-loop lag, GC): ehr_process_*, ehr_nodejs_*.
collectDefaultMetrics({ register: registry, prefix: 'ehr_' });

export const httpRequests = new Counter({
  name: 'ehr_http_requests_total',
  help: 'HTTP requests answered, by method, route pattern and status code.',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

export const httpDuration = new Histogram({
  name: 'ehr_http_request_duration_seconds',
  help: 'Time from request received to response sent, by method, route pattern and status class.',
  labelNames: ['method', 'route', 'status_class'] as const,
  buckets: BUCKETS,
  registers: [registry],
});

export const upstreamDuration = new Histogram({
  name: 'ehr_upstream_request_duration_seconds',
  help: 'Latency of calls to Orthanc (HTTP, until the response ended) and PostgreSQL (per statement).',
  labelNames: ['upstream', 'outcome'] as const,
  buckets: BUCKETS,
  registers: [registry],
});

export const upstreamErrors = new Counter({
  name: 'ehr_upstream_errors_total',
  help: 'Failed calls to Orthanc (network error or 5xx) and PostgreSQL (statement error).',
  labelNames: ['upstream'] as const,
  registers: [registry],
});

export const stowInstances = new Counter({
  name: 'ehr_stow_instances_total',
  help: 'STOW-RS and upload-form instances by outcome (stored, warning, failed) and DICOM reason code (hex).',
  labelNames: ['outcome', 'reason'] as const,
  registers: [registry],
});

export const auditCommitDuration = new Histogram({
  name: 'ehr_audit_commit_duration_seconds',
  help: 'Time to commit one batch of AuditEvents (to PostgreSQL or the durable outbox).',
  labelNames: ['outcome'] as const,
  buckets: BUCKETS,
  registers: [registry],
});

export interface GaugeSample {
  labels?: Record<string, string>;
  value: number;
}

const readers = new Map<string, () => GaugeSample[]>();

function collected(
  kind: 'gauge' | 'counter',
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => GaugeSample[],
): void {
  readers.set(name, read);
  if (registry.getSingleMetric(name)) return;
  const samples = () => readers.get(name)?.() ?? [];
  if (kind === 'gauge') {
    new Gauge({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of samples()) this.set(s.labels ?? {}, s.value);
      },
    });
    return;
  }
  new Counter({
    name,
    help,
    labelNames: [...labelNames],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of samples()) this.inc(s.labels ?? {}, Math.max(0, s.value));
    },
  });
}

/**
 * Registers (or replaces) a gauge whose samples are read at scrape time. Replacing keeps the metric and swaps the
 * reader, so an app built again in the same process (tests) reports its own state.
 */
export function registerGauge(
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => GaugeSample[],
): void {
  collected('gauge', name, help, labelNames, read);
}

/** Like {@link registerGauge} for a cumulative count kept elsewhere (name ends in `_total`). */
export function registerCounter(
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => GaugeSample[],
): void {
  collected('counter', name, help, labelNames, read);
}

/** Stops reading a gauge (its app closed); the metric stays, empty. */
export function unregisterGauge(name: string, read: () => GaugeSample[]): void {
  if (readers.get(name) === read) readers.delete(name);
}

/** Seconds since `start` (a `process.hrtime.bigint()` value). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}
