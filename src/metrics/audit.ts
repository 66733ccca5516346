import { auditCommitDuration, registerGauge, secondsSince } from './registry.ts';

/** Wraps a batch commit function so that each batch's commit time (and failure) is recorded. */
export function timedAuditCommit<T, R>(
  commit: (items: readonly T[]) => Promise<readonly R[]>,
): (items: readonly T[]) => Promise<readonly R[]> {
  return async (items) => {
    const start = process.hrtime.bigint();
    try {
      const out = await commit(items);
      auditCommitDuration.observe({ outcome: 'ok' }, secondsSince(start));
      return out;
    } catch (err) {
      auditCommitDuration.observe({ outcome: 'error' }, secondsSince(start));
      throw err;
    }
  };
}

/** Reports the AuditEvents waiting in the group-commit queue and, when configured, in the durable outbox. */
export function watchAuditQueues(writer: { pending: number }, outbox: { pending: number } | null): void {
  registerGauge('ehr_audit_queue_depth', 'AuditEvents not yet committed, by queue (writer, outbox).', ['queue'], () => [
    { labels: { queue: 'writer' }, value: writer.pending },
    ...(outbox ? [{ labels: { queue: 'outbox' }, value: outbox.pending }] : []),
  ]);
}
