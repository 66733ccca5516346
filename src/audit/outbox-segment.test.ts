import type { AuditEvent } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { OutboxCorruptError, parseSegment, segmentLines, segmentName, segmentNumber } from './outbox-segment.ts';

const ev = (id: string, extra: Partial<AuditEvent> = {}): AuditEvent =>
  ({
    resourceType: 'AuditEvent',
    id,
    type: { code: 'rest' },
    recorded: '2026-11-28T12:00:00Z',
    agent: [],
    source: { observer: {} },
    ...extra,
  }) as AuditEvent;

describe('segment names', () => {
  test.each([
    [1, 'segment-000000000001.ndjson'],
    [42, 'segment-000000000042.ndjson'],
    [123456789012, 'segment-123456789012.ndjson'],
  ])('segment %i is %s and back', (n, name) => {
    expect(segmentName(n)).toBe(name);
    expect(segmentNumber(name)).toBe(n);
  });

  test.each(['LOCK', 'segment-1.ndjson', 'segment-000000000001.ndjson.corrupt', 'x-000000000001.ndjson'])(
    '%s is not a segment',
    (name) => {
      expect(segmentNumber(name)).toBeUndefined();
    },
  );

  test('names sort in numeric order', () => {
    const names = [10, 9, 100, 1].map(segmentName).sort();
    expect(names.map(segmentNumber)).toEqual([1, 9, 10, 100]);
  });
});

describe('parseSegment', () => {
  const a = ev('a');
  const b = ev('b', { outcomeDesc: 'line\nbreak and \u2028 separator' });
  const whole = segmentLines([a, b]);

  test.each([
    ['empty file', '', [], false],
    ['whole segment', whole, [a, b], false],
    ['torn last line (write cut short)', `${whole}{"resourceType":"Audit`, [a, b], true],
    ['torn only line', '{"resourceType"', [], true],
    ['a value with a line break stays one line', segmentLines([b]), [b], false],
  ])('%s', (_name, text, events, torn) => {
    expect(parseSegment(text)).toEqual({ events, torn });
  });

  test.each([
    ['not JSON in the middle', `${segmentLines([a])}garbage\n${segmentLines([b])}`, 2],
    ['not an AuditEvent', `${JSON.stringify({ resourceType: 'Patient', id: 'p' })}\n`, 1],
    ['no id', `${JSON.stringify({ resourceType: 'AuditEvent' })}\n`, 1],
    ['null line', 'null\n', 1],
    ['an empty line', `${segmentLines([a])}\n`, 2],
  ])('%s is corruption (line %#)', (_name, text, line) => {
    const err = (() => {
      try {
        parseSegment(text);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(OutboxCorruptError);
    expect((err as OutboxCorruptError).line).toBe(line);
  });
});
