import { describe, expect, test } from 'vitest';
import { type AuditEvent, accessRows, practitionerRefs } from './access-model.ts';

const SELF = 'Patient/p1';
const doctor = {
  who: { reference: 'Practitioner/d1', display: 'Practitioner/d1' },
  role: [{ text: 'doctor' }],
  requestor: true,
};

describe('accessRows', () => {
  test.each<[string, AuditEvent, Partial<ReturnType<typeof accessRows>[number]>]>([
    [
      'a doctor reads an ImagingStudy',
      {
        recorded: '2026-01-02T10:00:00Z',
        type: { code: 'rest' },
        subtype: [{ code: 'read' }],
        outcome: '0',
        agent: [doctor],
        entity: [{ what: { reference: 'ImagingStudy/s1' } }, { what: { reference: SELF } }],
      },
      { who: 'doctor (Practitioner/d1)', what: 'read: ImagingStudy', outcome: 'allowed' },
    ],
    [
      'the patient downloads a study',
      {
        recorded: '2026-01-02T11:00:00Z',
        type: { code: '110106' },
        outcome: '0',
        agent: [{ who: { reference: SELF }, requestor: true }],
        entity: [{ what: { identifier: { value: '1.2.3', type: { coding: [{ code: '110180' }] } } } }],
      },
      { who: 'You', what: 'images downloaded (export): imaging study', outcome: 'allowed' },
    ],
    [
      'the record closing a viewing session',
      {
        recorded: '2026-01-02T11:30:00Z',
        type: { code: '110104' },
        outcome: '0',
        agent: [doctor],
        entity: [
          {
            what: { identifier: { value: '1.2.3', type: { coding: [{ code: '110180' }] } } },
            detail: [
              { type: 'retrievals', valueString: '42' },
              { type: 'frames', valueString: '40' },
            ],
          },
        ],
      },
      { what: 'images retrieved: imaging study (42 requests in one session)', outcome: 'allowed' },
    ],
    [
      'a refused WADO retrieval',
      {
        recorded: '2026-01-02T12:00:00Z',
        type: { code: '110104' },
        outcome: '4',
        agent: [{ who: { display: 'User/u1' }, requestor: true }],
      },
      { who: 'User/u1', what: 'images retrieved', outcome: 'refused' },
    ],
    [
      'a search of orders',
      {
        subtype: [{ code: 'search-type' }],
        agent: [doctor],
        entity: [{ description: 'ServiceRequest', role: { code: '24' } }],
      },
      { what: 'search: ServiceRequest' },
    ],
    [
      'a read of the patient',
      { subtype: [{ code: 'read' }], entity: [{ what: { reference: SELF } }] },
      { what: 'read: your details' },
    ],
    ['no requestor', { outcome: '8' }, { who: 'Unknown', what: 'access', outcome: 'failed' }],
  ])('%s', (_name, event, expected) => {
    expect(accessRows([event], SELF)[0]).toMatchObject(expected);
  });

  test('a name looked up replaces the reference', () => {
    const e: AuditEvent = { agent: [doctor] };
    expect(accessRows([e], SELF, new Map([['Practitioner/d1', 'Dr Demo']]))[0]?.who).toBe('doctor (Dr Demo)');
    expect(practitionerRefs([e, e, { agent: [{ who: { reference: SELF }, requestor: true }] }])).toEqual([
      'Practitioner/d1',
    ]);
  });

  test('newest first', () => {
    const rows = accessRows(
      [
        { id: 'a', recorded: '2026-01-01T00:00:00Z' },
        { id: 'b', recorded: '2026-02-01T00:00:00Z' },
      ],
      SELF,
    );
    expect(rows.map((r) => r.id)).toEqual(['b', 'a']);
  });
});
