import type { AuditEvent } from '@medplum/fhirtypes';
import { expect, test } from 'vitest';
import { type AuditBase, fhirRestEvent } from './balp.ts';
import { auditIndex, type ChainRow, checkLink, describeBreak, GENESIS_HASH, linkHash } from './chain.ts';

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
