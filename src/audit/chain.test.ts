import type { AuditEvent } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { type AuditBase, fhirRestEvent } from './balp.ts';
import {
  auditIndex,
  type ChainRow,
  canonicalJson,
  checkLink,
  describeBreak,
  GENESIS_HASH,
  linkHash,
  referenceCanonicalJson,
} from './chain.ts';

const base: AuditBase = {
  recorded: '2025-03-04T05:06:07.000Z',
  requestId: 'r-1',
  network: '127.0.0.1',
  serverBaseUrl: 'http://localhost:8000',
  agent: { who: 'Practitioner/p1', sub: 's1', fhirUser: 'Practitioner/p1', clientId: 'app', roles: [] },
  outcome: '0',
};
const event: AuditEvent = {
  ...fhirRestEvent(base, { interaction: 'read', resourceType: 'Observation', id: 'o1', patientIds: ['pa'] }),
  id: '00000000-0000-4000-8000-000000000001',
};

function row(content: AuditEvent, seq: number, prevHash: string): ChainRow {
  return {
    seq,
    id: content.id as string,
    content,
    prevHash,
    hash: linkHash(prevHash, content),
    index: auditIndex(content),
  };
}

test('the link hash does not depend on key order but on every value', () => {
  expect(linkHash(GENESIS_HASH, { a: 1, b: [1, 2] })).toBe(linkHash(GENESIS_HASH, { b: [1, 2], a: 1 }));
  expect(linkHash(GENESIS_HASH, { a: 1, b: [2, 1] })).not.toBe(linkHash(GENESIS_HASH, { a: 1, b: [1, 2] }));
  expect(linkHash('1'.repeat(64), { a: 1 })).not.toBe(linkHash(GENESIS_HASH, { a: 1 }));
  expect(linkHash(GENESIS_HASH, { a: 1 })).toMatch(/^[0-9a-f]{64}$/);
});

describe('canonicalJson (RFC 8785) agrees with the reference implementation', () => {
  const shared = { z: 1, a: 2 };
  test.each([
    ['a BALP event', event],
    ['members out of order, nested', { b: { d: 1, c: [{ y: 1, x: 2 }] }, a: null }],
    ['already in order', { a: 1, b: { c: 2 } }],
    ['members in UTF-16 code unit order', { '\u20ac': 1, '\ud83d\ude00': 2, a: 3, Z: 4, '10': 5, '9': 6, '': 7 }],
    ['undefined members are left out', { b: undefined, a: 1, c: { e: undefined, d: 2 } }],
    ['undefined member before a reordered one', { a: undefined, c: { y: 1, x: 2 }, b: 1 }],
    ['numbers as ECMAScript prints them', { n: [0, -0, 1e21, 1e-7, 0.1, 123456789012345680000, -1.5] }],
    ['strings with escapes', { s: 'quote " backslash \\ newline \n tab \t nul \u0000 \u2028 pair \ud83d\ude00' }],
    ['the same object twice', { x: shared, y: [shared, shared] }],
    ['top-level array and scalars', [3, 'x', true, null, { b: 1, a: 2 }]],
    ['a string', 'plain'],
    ['a Date (toJSON): reference path', { when: new Date('2026-11-28T12:00:00Z'), a: 1 }],
    [
      'a class instance: reference path',
      {
        v: new (class V {
          b = 1;
          a = 2;
        })(),
      },
    ],
  ])('%s', (_name, value) => {
    expect(canonicalJson(value)).toBe(referenceCanonicalJson(value));
  });

  test('a lone surrogate is refused, as RFC 8785 §3.2.2.2 requires', () => {
    expect(() => canonicalJson({ s: 'a\ud800' })).toThrow();
  });

  test('the value itself is never changed', () => {
    const value = { b: { d: 1, c: 2 }, a: [{ y: 1, x: 2 }] };
    const before = JSON.stringify(value);
    canonicalJson(value);
    expect(JSON.stringify(value)).toBe(before);
  });
});

test('the index is derived from the content', () => {
  const ix = auditIndex(event);
  expect(ix.patientIds).toEqual(['pa']);
  expect(ix.agentWho).toEqual(expect.arrayContaining(['Practitioner/p1', 's1', 'app']));
  expect(ix.entityRefs).toEqual(['Observation/o1', 'Patient/pa']);
  expect(ix.typeTokens).toEqual(['http://terminology.hl7.org/CodeSystem/audit-event-type|rest', 'rest']);
  expect(ix.subtypeTokens).toEqual(['http://hl7.org/fhir/restful-interaction|read', 'read']);
  expect(ix).toMatchObject({ action: 'R', outcome: '0', source: 'http://localhost:8000', requestId: 'r-1' });
});

const prev = { seq: 6, hash: 'a'.repeat(64) };
const good = row(event, 7, prev.hash);

test.each<[string, ChainRow, string | undefined]>([
  ['a sound link', good, undefined],
  ['changed content', { ...good, content: { ...event, outcome: '4' } }, 'hash-mismatch'],
  ['a removed predecessor', { ...good, seq: 8 }, 'sequence-gap'],
  ['a foreign prev hash', row(event, 7, 'b'.repeat(64)), 'prev-hash-mismatch'],
  ['an edited index column', { ...good, index: { ...good.index, patientIds: ['other'] } }, 'index-mismatch'],
  ['an id swapped', { ...good, id: '00000000-0000-4000-8000-000000000002' }, 'id-mismatch'],
])('%s → %s', (_name, r, problem) => {
  const b = checkLink(r, prev);
  expect(b?.problem).toBe(problem);
  if (b) expect(describeBreak(b)).toContain(`event #${r.seq}`);
});
