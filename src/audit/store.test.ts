import type { AuditEvent } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { GENESIS_HASH, linkHash } from './chain.ts';
import { batchJson, linkAfter } from './store.ts';

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
    ['plain text', 'plain', 'plain'],
  ])('%s: what is hashed is exactly what is stored (jsonb cannot hold U+0000)', (_, display, stored) => {
    const linked = linkAfter({ seq: 0, hash: GENESIS_HASH }, [event(display)]);
    const s = linked.stored[0];
    expect(s?.event.agent?.[0]?.who?.display).toBe(stored);
    expect(s?.hash).toBe(linkHash(GENESIS_HASH, s?.event));
    const roundTrip = JSON.parse(batchJson(linked.rows)) as { content: AuditEvent }[];
    expect(roundTrip[0]?.content).toEqual(s?.event);
    expect(batchJson(linked.rows)).not.toContain('\\u0000');
  });
});
