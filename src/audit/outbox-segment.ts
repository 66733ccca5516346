/**
 * The on-disk format of the audit outbox (outbox.ts), pure: a segment file holds the items of the audit writer as
 * NDJSON, one per line, in the order they were accepted: AuditEvents, or compact records (compact.ts) that render
 * into them (segments written before compact records existed hold only AuditEvents). `JSON.stringify` never emits a
 * raw line break inside a value, so a line is always exactly one event.
 *
 * A crash can leave only the tail of the newest segment torn: a batch's lines are written and fdatasync'd before any
 * of its responses is released, so a torn (unterminated) last line belongs to a batch that no client saw completed,
 * and it is dropped. A bad line anywhere else is corruption, reported as {@link OutboxCorruptError}.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { type AuditItem, isCompact } from './compact.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

const NAME = /^segment-(\d{12})\.ndjson$/;

/** A complete line of a segment is not an AuditEvent with an id (disk corruption or a foreign file). */
export class OutboxCorruptError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_OUTBOX_CORRUPT';
  override name = 'OutboxCorruptError';
  readonly line: number;
  constructor(line: number, reason: string) {
    super(`audit outbox segment line ${line}: ${reason}`);
    this.line = line;
  }
}

/** The file name of segment number `n` (sorts in numeric order). */
export const segmentName = (n: number): string => `segment-${String(n).padStart(12, '0')}.ndjson`;

/** The number of a segment file, or undefined for any other name. */
export function segmentNumber(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The lines of `events` as appended to a segment. */
export const segmentLines = (events: readonly AuditItem[]): string => {
  let out = '';
  for (const e of events) out += `${JSON.stringify(e)}\n`;
  return out;
};

/** The events of a segment's text; `torn` when an unterminated last line was dropped. */
export function parseSegment(text: string): { events: AuditItem[]; torn: boolean } {
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  const events = lines.map((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new OutboxCorruptError(i + 1, 'not JSON');
    }
    if (isCompact(value) && typeof value.id === 'string') return value;
    const e = value as Partial<AuditEvent> | null;
    if (typeof e !== 'object' || e === null || e.resourceType !== 'AuditEvent' || typeof e.id !== 'string') {
      throw new OutboxCorruptError(i + 1, 'not an AuditEvent or a compact audit record with an id');
    }
    return e as AuditEvent;
  });
  return { events, torn: tail !== '' };
}
