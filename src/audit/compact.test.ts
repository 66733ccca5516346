import type { AuditEvent } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import type { Agent } from '../auth/access.ts';
import type { AuditBase } from './balp.ts';
import { auditIndex, type ChainRow, canonicalJson, checkLink, GENESIS_HASH, linkHash } from './chain.ts';
import { SUBTYPE } from './codes.ts';
import {
  type AuditDescription,
  type AuditItem,
  buildAuditEvent,
  type CompactAuditRecord,
  compactRecord,
  isCompact,
  renderCompact,
  renderItem,
} from './compact.ts';
import { AuditContext } from './context.ts';
import { OutboxCorruptError, parseSegment, segmentLines } from './outbox-segment.ts';
import { type EventRow, linkAfter } from './store.ts';

const doctor: Agent = {
  who: 'Practitioner/dr1',
  sub: 'dr1',
  fhirUser: 'Practitioner/dr1',
  clientId: 'ehr-web',
  jti: 'jti-1',
  roles: ['doctor'],
  purposeOfUse: ['TREAT'],
};
const patientUser: Agent = { who: 'Patient/p1', sub: 'p1', roles: [] };

const base = (over: Partial<AuditBase> = {}): AuditBase => ({
  recorded: '2026-12-07T10:00:00.000Z',
  requestId: 'req-1',
  network: '10.0.0.7',
  serverBaseUrl: 'https://ehr.example.org',
  agent: doctor,
  outcome: '0',
  ...over,
});
const denied = base({ outcome: '4', outcomeDesc: 'access denied', denied: true, requestedPatientIds: ['p2', 'p3'] });

/** One description of every kind (and the interesting variants), each with the bases it is recorded with. */
const DESCRIPTIONS: [string, AuditDescription][] = [
  [
    'fhir read',
    { kind: 'fhir', input: { interaction: 'read', resourceType: 'Patient', id: 'p1', patientIds: ['p1'] } },
  ],
  [
    'fhir vread',
    { kind: 'fhir', input: { interaction: 'vread', resourceType: 'Observation', id: 'o1', versionId: '3' } },
  ],
  [
    'fhir search, patients as a Set',
    {
      kind: 'fhir',
      input: {
        interaction: 'search-type',
        resourceType: 'Observation',
        query: 'patient=p1&_count=5',
        patientIds: new Set(['p2', 'p1']),
      },
    },
  ],
  ['fhir create', { kind: 'fhir', input: { interaction: 'create', resourceType: 'Observation' } }],
  ['fhir system search', { kind: 'fhir', input: { interaction: 'search-system' } }],
  [
    'dicom query',
    {
      kind: 'dicom-query',
      input: {
        path: '/studies/1.2.3/series',
        query: 'PatientID=MRN-1',
        studies: [{ studyUid: '1.2.3' }],
        patientIds: ['p1'],
      },
    },
  ],
  [
    'dicom retrieve',
    {
      kind: 'dicom-retrieve',
      input: {
        studies: [{ studyUid: '1.2.3', seriesUid: '1.2.3.4', instanceUid: '1.2.3.4.5' }, { studyUid: '1.2.3' }],
        patientIds: ['p1'],
      },
    },
  ],
  ['dicom export', { kind: 'dicom-retrieve', input: { studies: [{ studyUid: '1.2.9' }], export: true } }],
  [
    'dicom store',
    {
      kind: 'dicom-store',
      input: {
        studies: [{ studyUid: '1.2.3' }],
        patientIds: ['p1'],
        order: { serviceRequestId: 'sr1', accessionNumber: 'ACC1' },
      },
    },
  ],
  ['login (failed)', { kind: 'login', input: { username: 'mallory' } }],
  ['login', { kind: 'login', input: { username: 'dr1', user: doctor, clientId: 'ehr-web' } }],
  [
    'token issued',
    {
      kind: 'token-issued',
      input: {
        grantType: 'authorization_code',
        clientId: 'app',
        user: patientUser,
        jti: 'j2',
        scope: 'patient/*.rs',
        patientId: 'p1',
      },
    },
  ],
  ['client assertion refused', { kind: 'client-assertion-refused', input: { clientId: 'app', reason: 'expired' } }],
  ['api', { kind: 'api', input: { method: 'POST', path: '/api/v1/dicom/upload' } }],
  ['auth', { kind: 'auth', input: { path: '/auth/token', subtype: SUBTYPE.getAccessToken } }],
  ['auth without subtype', { kind: 'auth', input: { path: '/auth/logout' } }],
];
const BASES: [string, AuditBase][] = [
  ['allowed', base()],
  ['denied with requested patients', denied],
  [
    'unauthenticated, no network',
    base({ agent: undefined, network: undefined, outcome: '8', outcomeDesc: 'HTTP 500' }),
  ],
];
const CASES = DESCRIPTIONS.flatMap(([name, d]) => BASES.map(([b, ba]) => [`${name}, ${b}`, d, ba] as const));

/** A record as it comes back from jsonb (or an outbox segment): JSON only. */
const stored = (r: CompactAuditRecord): CompactAuditRecord => JSON.parse(JSON.stringify(r)) as CompactAuditRecord;
const expected = (d: AuditDescription, b: AuditBase, id: string): AuditEvent =>
  JSON.parse(JSON.stringify({ ...buildAuditEvent(d, b), id })) as AuditEvent;

describe('compact record ↔ rendered event', () => {
  test.each(CASES)('%s: the stored record renders exactly the BALP event', (_, d, b) => {
    const record = stored(compactRecord(d, b, 'e-1'));
    expect(isCompact(record)).toBe(true);
    const rendered = renderCompact(record);
    expect(canonicalJson(rendered)).toBe(canonicalJson(expected(d, b, 'e-1')));
    expect(auditIndex(rendered)).toEqual(auditIndex(expected(d, b, 'e-1')));
  });

  test.each(CASES)('%s: the record is plain JSON in canonical order (it survives storage)', (_, d, b) => {
    const record = compactRecord(d, b, 'e-1');
    expect(canonicalJson(stored(record))).toBe(canonicalJson(record));
    // Already in canonical order: canonicalizing it is serializing it.
    expect(JSON.stringify(record)).toBe(canonicalJson(record));
  });

  test.each([
    ['a BALP event', expected(DESCRIPTIONS[0]?.[1] as AuditDescription, base(), 'x'), false],
    ['a compact record', compactRecord({ kind: 'api', input: { method: 'GET', path: '/api' } }, base()), true],
    ['a record of another version', { compact: 2, description: {}, base: {} }, false],
    ['an event that says compact', { resourceType: 'AuditEvent', compact: 1 }, false],
    ['null', null, false],
  ])('isCompact(%s) is %s', (_, item, is) => {
    expect(isCompact(item)).toBe(is);
  });

  test.each([
    ['a read with patients and requested patients', 200, (c: AuditContext) => c.addPatients('p1').addRequested('p9')],
    ['a refused read', 403, (c: AuditContext) => c.addPatients('p1').addRequested('p1')],
    ['a hidden read', 404, (c: AuditContext) => c.deny()],
    [
      'a search with patients',
      200,
      (c: AuditContext) =>
        c.fhir({ interaction: 'search-type', resourceType: 'Observation', query: 'a=b' }).addPatients('p2', 'p1'),
    ],
    ['an outcome override', 200, (c: AuditContext) => c.outcome('4', 'login failed')],
  ])('AuditContext: %s: record() renders what build() builds', (_, status, fill) => {
    const ctx = new AuditContext({
      requestId: 'r-7',
      method: 'GET',
      url: '/fhir/Patient/p1',
      network: '127.0.0.1',
      serverBaseUrl: 'https://ehr.example.org',
    });
    ctx.agent = doctor;
    fill(ctx);
    const at = new Date('2026-12-07T10:00:00Z');
    const rendered = renderCompact(stored({ ...ctx.record(status, at), id: 'e-7' }));
    expect(canonicalJson(rendered)).toBe(canonicalJson({ ...ctx.build(status, at), id: 'e-7' }));
  });
});

const full = (display: string): AuditEvent => ({
  resourceType: 'AuditEvent',
  type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' },
  recorded: '2026-11-28T09:00:00.000Z',
  outcome: '0',
  agent: [{ requestor: true, who: { display } }],
  source: { observer: { display: 'test' } },
});
const compact = (path: string, over: Partial<AuditBase> = {}): CompactAuditRecord =>
  compactRecord(
    { kind: 'fhir', input: { interaction: 'read', resourceType: 'Patient', id: path, patientIds: [path] } },
    base(over),
  );

/** A linked row as verification reads it back (jsonb gives the content back as JSON). */
const chainRow = (r: EventRow): ChainRow => ({
  seq: r.seq,
  id: r.id,
  content: JSON.parse(JSON.stringify(r.content)) as unknown,
  prevHash: r.prev_hash,
  hash: r.hash,
  index: {
    recorded: r.recorded,
    patientIds: [...r.patient_ids],
    requestedPatientIds: [...r.requested_patient_ids],
    agentWho: [...r.agent_who],
    entityRefs: [...r.entity_refs],
    typeTokens: [...r.type_tokens],
    subtypeTokens: [...r.subtype_tokens],
    action: r.action,
    outcome: r.outcome,
    source: r.source,
    requestId: r.request_id,
  },
});
const render = (content: unknown) => renderItem(content as AuditItem);

/** The first break of a chain of rows, or undefined. */
function verify(rows: readonly ChainRow[], head = { seq: 0, hash: GENESIS_HASH }) {
  let prev = head;
  for (const row of rows) {
    const broken = checkLink(row, prev, render);
    if (broken) return broken;
    prev = { seq: row.seq, hash: row.hash };
  }
  return undefined;
}

describe('compact rows in the chain', () => {
  test('a compact row stores and hashes the record, its index columns are those of the rendered event', () => {
    const record = compact('p1');
    const linked = linkAfter({ seq: 3, hash: 'a'.repeat(64) }, [record]);
    const row = linked.rows[0] as EventRow;
    const s = linked.stored[0];
    expect(row.content).toEqual({ ...record, id: row.id });
    expect(row.hash).toBe(linkHash('a'.repeat(64), row.content));
    expect(s?.event).toEqual(renderCompact(row.content as CompactAuditRecord));
    expect(s?.event.id).toBe(row.id);
    const ix = auditIndex(s?.event as AuditEvent);
    expect(row).toMatchObject({ patient_ids: ix.patientIds, entity_refs: ix.entityRefs, request_id: 'req-1' });
    expect((JSON.parse(linked.json) as { content: unknown }[])[0]?.content).toEqual(row.content);
    // Much less to hash and send than the event.
    expect(canonicalJson(row.content).length).toBeLessThan(canonicalJson(s?.event).length / 2);
  });

  test.each([
    ['a NUL character', 'evil\u0000id'],
    ['a lone surrogate', 'a\ud800b'],
  ])('a record holding %s is stored as its (storable) BALP event instead', (_, id) => {
    const linked = linkAfter({ seq: 0, hash: GENESIS_HASH }, [compact(id)]);
    const row = linked.rows[0] as EventRow;
    expect(isCompact(row.content)).toBe(false);
    expect((row.content as AuditEvent).resourceType).toBe('AuditEvent');
    expect(JSON.stringify(row.content)).not.toMatch(/(?<!\\)(\\\\)*\\u(0000|d[89a-f])/);
    expect(verify(linked.rows.map(chainRow))).toBeUndefined();
  });

  const mixed = (): EventRow[] =>
    linkAfter({ seq: 0, hash: GENESIS_HASH }, [
      full('a'),
      compact('p1'),
      compact('p2', { outcome: '4', denied: true, requestedPatientIds: ['p2'] }),
      full('b'),
      compact('p3'),
    ]).rows;

  test('a mixed chain of BALP and compact rows verifies', () => {
    expect(verify(mixed().map(chainRow))).toBeUndefined();
  });

  const tamper = (i: number, change: (r: ChainRow) => ChainRow) =>
    mixed()
      .map(chainRow)
      .map((r, k) => (k === i ? change(r) : r));
  const withBase = (r: ChainRow, b: Partial<AuditBase>): ChainRow => {
    const c = r.content as CompactAuditRecord;
    return { ...r, content: { ...c, base: { ...c.base, ...b } } };
  };
  test.each([
    ['the outcome inside a compact record', () => tamper(1, (r) => withBase(r, { outcome: '8' })), 'hash-mismatch'],
    ['the agent inside a compact record', () => tamper(2, (r) => withBase(r, { agent: patientUser })), 'hash-mismatch'],
    [
      'the form: a compact record made an event',
      () => tamper(1, (r) => ({ ...r, content: render(r.content) })),
      'hash-mismatch',
    ],
    [
      'the patient_ids column of a compact row',
      () => tamper(1, (r) => ({ ...r, index: { ...r.index, patientIds: ['p9'] } })),
      'index-mismatch',
    ],
    [
      'the requested_patient_ids column of a compact row',
      () => tamper(2, (r) => ({ ...r, index: { ...r.index, requestedPatientIds: [] } })),
      'index-mismatch',
    ],
    [
      'the outcome column of a compact row',
      () => tamper(4, (r) => ({ ...r, index: { ...r.index, outcome: '8' } })),
      'index-mismatch',
    ],
    ['the row id of a compact row', () => tamper(3 + 1, (r) => ({ ...r, id: 'other' })), 'id-mismatch'],
    [
      'a removed compact row',
      () =>
        mixed()
          .map(chainRow)
          .filter((_, k) => k !== 2),
      'sequence-gap',
    ],
  ])('changing %s is detected (%s)', (_, rows, problem) => {
    expect(verify(rows())?.problem).toBe(problem);
  });
});

describe('outbox segments carry compact records', () => {
  const record = { ...compact('p1'), id: 'c-1' };
  const event = { ...full('a'), id: 'f-1' };

  test.each([
    ['compact records', [record], [record]],
    ['events written before compact records (old segments)', [event], [event]],
    ['both', [event, record, event], [event, record, event]],
  ])('%s are read back as written', (_, items, back) => {
    expect(parseSegment(segmentLines(items as AuditItem[]))).toEqual({ events: back, torn: false });
  });

  test.each([
    ['a compact record without an id', JSON.stringify(compact('p1'))],
    ['a record of an unknown version', JSON.stringify({ ...record, compact: 9 })],
  ])('%s is corruption', (_, line) => {
    expect(() => parseSegment(`${line}\n`)).toThrow(OutboxCorruptError);
  });
});
