import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import { describe, expect, test } from 'vitest';
import { patientEntity, queryEntity, requestedPatientEntity, requestIdEntity } from './balp.ts';
import { studyEntity } from './balp-dicom.ts';
import { linkHash } from './chain.ts';
import { entitySurvives, type OwnIdentifiers, REDACTED_LABEL, redactForPatient, scrubQuery } from './redact.ts';
import { uidForms } from './search.ts';

const own: OwnIdentifiers = {
  patientIds: ['A'],
  mrns: ['MRN-A'],
  studyUids: ['1.2.3.1'],
  accessions: ['ACC-A'],
  orderIds: ['sr-a'],
};

const data = (reference: string): AuditEventEntity => ({
  type: { code: '2' },
  role: { code: '4' },
  what: { reference },
});
const q = (raw: string, description?: string) => queryEntity(raw, description);

function event(...entity: AuditEventEntity[]): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: 'e1',
    type: { code: 'rest' },
    recorded: '2026-01-01T00:00:00Z',
    agent: [{ who: { reference: 'Practitioner/dr' }, requestor: true }],
    source: { observer: { display: 'x' } },
    entity: [...entity, requestIdEntity('req-1')],
  };
}

const decoded = (e: AuditEvent) =>
  (e.entity ?? []).flatMap((x) => (x.query ? [Buffer.from(x.query, 'base64').toString('utf8')] : []));
const refs = (e: AuditEvent) => (e.entity ?? []).map((x) => x.what?.reference ?? x.what?.identifier?.value ?? '(q)');

describe('redactForPatient', () => {
  test.each<[string, AuditEvent, string[], string[], boolean]>([
    [
      "A's own read: unchanged",
      event(patientEntity('A'), data('ImagingStudy/is-a')),
      ['Patient/A', 'ImagingStudy/is-a', 'req-1'],
      [],
      false,
    ],
    [
      'an admin read of A and B: B removed, query scrubbed',
      event(patientEntity('A'), patientEntity('B'), q('Patient?_id=A,B&_count=5', 'Patient')),
      ['Patient/A', '(q)', 'req-1'],
      ['Patient?_id=A,REDACTED&_count=5'],
      true,
    ],
    [
      "a QIDO naming both MRNs: B's MRN and study removed, A's study kept",
      event(
        patientEntity('A'),
        patientEntity('B'),
        studyEntity({ studyUid: '1.2.3.1' }),
        studyEntity({ studyUid: '9.9.9.2' }),
        q('/studies?PatientID=MRN-A,MRN-B&limit=5', 'QIDO-RS'),
      ),
      ['Patient/A', '1.2.3.1', '(q)', 'req-1'],
      ['/studies?PatientID=MRN-A,REDACTED&limit=5'],
      true,
    ],
    [
      'a multi-patient event: resources and orders of nobody-knows-whom are removed',
      event(patientEntity('A'), patientEntity('B'), data('ServiceRequest/sr-b')),
      ['Patient/A', 'req-1'],
      [],
      true,
    ],
    [
      'patients named for auditors only are always removed',
      event(patientEntity('A'), requestedPatientEntity('B')),
      ['Patient/A', 'req-1'],
      [],
      true,
    ],
    [
      'a path naming another study is scrubbed; series below own study are kept',
      event(
        patientEntity('A'),
        patientEntity('B'),
        q('/studies/9.9.9.2/series?StudyInstanceUID=1.2.3.1,urn:oid:9.9.9.2'),
        q('/studies/1.2.3.1/series/1.2.3.1.7/instances'),
      ),
      ['Patient/A', '(q)', '(q)', 'req-1'],
      ['/studies/REDACTED/series?StudyInstanceUID=1.2.3.1,REDACTED', '/studies/1.2.3.1/series/1.2.3.1.7/instances'],
      true,
    ],
    [
      'names, identifiers and unknown parameters are scrubbed, safe ones kept',
      event(patientEntity('A'), q('Patient?name=Berg&identifier=urn:mrn|MRN-A&birthdate=1970&_count=2')),
      ['Patient/A', '(q)', 'req-1'],
      ['Patient?name=REDACTED&identifier=urn%3Amrn%7CMRN-A&birthdate=REDACTED&_count=2'],
      true,
    ],
    [
      'a malformed query value is scrubbed whole',
      event(patientEntity('A'), q('Patient?_id=%E0%A4%A')),
      ['Patient/A', '(q)', 'req-1'],
      ['Patient?_id=REDACTED'],
      true,
    ],
  ])('%s', (_name, input, expectedRefs, expectedQueries, redacted) => {
    const before = JSON.stringify(input);
    const out = redactForPatient(input, own);
    expect(JSON.stringify(input)).toBe(before); // never changes the stored event
    expect(refs(out)).toEqual(expectedRefs);
    expect(decoded(out)).toEqual(expectedQueries);
    expect(out.agent).toEqual(input.agent);
    if (redacted) expect(out.meta?.security).toEqual([REDACTED_LABEL]);
    else expect(out).toBe(input);
    const text = [JSON.stringify(out), ...decoded(out)].join(' ');
    for (const secret of ['Patient/B', 'MRN-B', '9.9.9.2', 'sr-b', 'Berg']) expect(text).not.toContain(secret);
  });

  test('the stored hash still verifies after a redacted read', () => {
    const stored = event(patientEntity('A'), patientEntity('B'));
    const hash = linkHash('0'.repeat(64), stored);
    redactForPatient(stored, own);
    expect(linkHash('0'.repeat(64), stored)).toBe(hash);
  });

  test('an unsafe description is dropped, a resource type kept', () => {
    const out = redactForPatient(event(patientEntity('A'), q('Patient?_count=1', 'Patient B Berg')), own);
    expect(out.entity?.find((x) => x.query)?.description).toBeUndefined();
    expect(redactForPatient(event(q('Patient?_count=1', 'Patient')), own).entity?.[0]?.description).toBe('Patient');
  });
});

describe('scrubQuery', () => {
  test.each([
    ['Observation?patient=Patient/A&code=1234-5', 'Observation?patient=Patient%2FA&code=1234-5'],
    ['Observation?subject=http://x/fhir/Patient/B', 'Observation?subject=REDACTED'],
    ['ServiceRequest?patient=B', 'ServiceRequest?patient=REDACTED'],
    ['Patient/B/_history', 'Patient/REDACTED/_history'],
    ['Patient/A/_history', 'Patient/A/_history'],
    ['Patient/A/_history/3', 'Patient/A/_history/3'],
    ['Patient/Bob', 'Patient/REDACTED'],
    ['Patient/Bob/Observation?code=x', 'Patient/REDACTED/Observation?code=x'],
    ['Patient?Bob', 'Patient?REDACTED'],
    ['/studies/9.9.9.2/series/9.9.9.2.1/metadata', '/studies/REDACTED/series/REDACTED/metadata'],
    ['/studies/1.2.3.1/series/1.2.3.1.5/metadata', '/studies/1.2.3.1/series/1.2.3.1.5/metadata'],
    ['/studies?00100020=MRN-B', '/studies?00100020=REDACTED'],
    ['/studies?AccessionNumber=ACC-A', '/studies?AccessionNumber=ACC-A'],
    ['grant_type=authorization_code&scope=patient/*.rs', 'grant_type=authorization_code&scope=patient/*.rs'],
  ])('%s → %s', (raw, scrubbed) => {
    expect(scrubQuery(raw, own)).toBe(scrubbed);
  });
});

describe('entitySurvives (search by a patient matches only what it will see)', () => {
  test.each<[string, 'always' | 'only' | 'never']>([
    ['Patient/A', 'always'],
    ['Patient/B', 'never'],
    ['Patient/never-existed', 'never'],
    ['1.2.3.1', 'always'],
    ['urn:oid:1.2.3.1', 'always'],
    ['9.9.9.2', 'never'],
    ['urn:oid:9.9.9.2', 'never'],
    ['ServiceRequest/sr-a', 'only'],
    ['ACC-A', 'only'],
  ])('%s → %s', (value, expected) => {
    expect(entitySurvives(value, own)).toBe(expected);
  });
});

describe('uidForms (entity= accepts both UID forms)', () => {
  test.each([
    ['1.2.3', ['1.2.3', 'urn:oid:1.2.3']],
    ['urn:oid:1.2.3', ['1.2.3', 'urn:oid:1.2.3']],
    ['Patient/A', ['Patient/A']],
    ['ACC-1', ['ACC-1']],
  ])('%s', (value, forms) => {
    expect(uidForms(value)).toEqual(forms);
  });
});
