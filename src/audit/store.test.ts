import type { AuditEvent } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { GENESIS_HASH, linkHash } from './chain.ts';
import { linkAfter } from './store.ts';

const event = (display: string): AuditEvent => ({
  resourceType: 'AuditEvent',
  type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
  recorded: '2026-11-28T09:00:00.000Z',
  outcome: '0',
  agent: [{ requestor: true, who: { display } }],
  source: { observer: { display: 'test' } },
});

describe('linkAfter', () => {
  test.each([
    { head: { seq: 0, hash: GENESIS_HASH }, n: 1 },
    { head: { seq: 41, hash: 'a'.repeat(64) }, n: 3 },
  ])('links $n events after seq $head.seq: dense seqs, each hash over the previous one', ({ head, n }) => {
    const events = Array.from({ length: n }, (_, i) => event(`agent ${i}`));
    const linked = linkAfter(head, events);
    let prev = head.hash;
    linked.stored.forEach((s, i) => {
      expect(s.seq).toBe(head.seq + i + 1);
      expect(s.hash).toBe(linkHash(prev, s.event));
      expect(linked.rows[i]).toMatchObject({ seq: s.seq, id: s.id, prev_hash: prev, hash: s.hash });
      prev = s.hash;
    });
    expect(linked.head).toEqual({ seq: head.seq + n, hash: prev });
  });

  test.each([
    ['a NUL character', 'evil\u0000name', 'evil\ufffdname'],
    ['NULs after backslashes', '\\\u0000\\\\\u0000', '\\\ufffd\\\\\ufffd'],
    ['the text of an escape, not a NUL', 'a\\u0000b', 'a\\u0000b'],
    ['a lone surrogate', 'a\ud800b\udfff', 'a\ufffdb\ufffd'],
    ['a surrogate pair stays', 'a\ud83d\ude00b', 'a\ud83d\ude00b'],
    ['plain text', 'plain', 'plain'],
  ])(
    '%s: what is hashed is exactly what is stored (jsonb holds neither U+0000 nor lone surrogates)',
    (_, display, stored) => {
      const linked = linkAfter({ seq: 0, hash: GENESIS_HASH }, [event(display)]);
      const s = linked.stored[0];
      expect(s?.event.agent?.[0]?.who?.display).toBe(stored);
      expect(s?.hash).toBe(linkHash(GENESIS_HASH, s?.event));
      const roundTrip = JSON.parse(linked.json) as { content: AuditEvent }[];
      expect(roundTrip[0]?.content).toEqual(s?.event);
      expect(JSON.stringify(roundTrip)).not.toMatch(/(?<!\\)(\\\\)*\\u(0000|d[89a-f])/);
    },
  );

  test('the batch JSON holds every column of every row, and the content as stored', () => {
    const linked = linkAfter({ seq: 5, hash: GENESIS_HASH }, [event('a'), event('b')]);
    const parsed = JSON.parse(linked.json) as Record<string, unknown>[];
    expect(parsed).toEqual(JSON.parse(JSON.stringify(linked.rows)));
    expect(parsed.map((r) => r['content'])).toEqual(linked.stored.map((s) => s.event));
  });
});
