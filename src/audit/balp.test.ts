import type { AuditEvent } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import type { Agent } from '../auth/access.ts';
import { type AuditBase, fhirRestEvent, outcomeForStatus, purposeOfUse } from './balp.ts';
import { clientAssertionRefusedEvent, loginEvent, tokenIssuedEvent } from './balp-auth.ts';
import { dicomQueryEvent, dicomRetrieveEvent, dicomStoreEvent } from './balp-dicom.ts';
import type { RestInteraction } from './codes.ts';
import { auditEventIssues } from './validate.ts';

const doctor: Agent = {
  who: 'Practitioner/dr-1',
  sub: 'user-7',
  fhirUser: 'Practitioner/dr-1',
  clientId: 'viewer-app',
  jti: 'tok-123',
  roles: ['doctor'],
  purposeOfUse: ['TREAT'],
};

const base: AuditBase = {
  recorded: '2025-01-02T03:04:05.678Z',
  requestId: 'req-1',
  network: '192.0.2.10',
  serverBaseUrl: 'https://ehr.example.org',
  agent: doctor,
  outcome: '0',
};

// Loading the R4 definitions for the validator takes a few seconds on a busy machine.
beforeAll(() => void auditEventIssues({ resourceType: 'AuditEvent' } as AuditEvent), 60_000);

const patientRefs = (e: AuditEvent) =>
  (e.entity ?? []).filter((x) => x.role?.code === '1').map((x) => x.what?.reference);
const user = (e: AuditEvent) => e.agent?.find((a) => a.requestor);
const client = (e: AuditEvent) => e.agent?.find((a) => a.who?.identifier?.system === 'urn:ietf:params:oauth:client-id');
const dataRefs = (e: AuditEvent) =>
  (e.entity ?? []).filter((x) => x.role?.code === '4').map((x) => x.what?.reference ?? x.what?.display);

describe('FHIR restful interactions', () => {
  test.each<[RestInteraction, string, string, string | undefined]>([
    ['read', 'R', '110152', 'IHE.BasicAudit.PatientRead'],
    ['vread', 'R', '110152', 'IHE.BasicAudit.PatientRead'],
    ['search-type', 'E', '110153', 'IHE.BasicAudit.PatientQuery'],
    ['history-instance', 'E', '110153', 'IHE.BasicAudit.PatientQuery'],
    ['create', 'C', '110153', 'IHE.BasicAudit.PatientCreate'],
    ['update', 'U', '110153', 'IHE.BasicAudit.PatientUpdate'],
    ['patch', 'U', '110153', 'IHE.BasicAudit.PatientUpdate'],
    ['delete', 'D', '110150', 'IHE.BasicAudit.PatientDelete'],
  ])('%s → action %s, client role %s, profile %s', (interaction, action, clientRole, profile) => {
    const e = fhirRestEvent(base, {
      interaction,
      resourceType: 'Observation',
      id: interaction === 'search-type' ? undefined : 'obs-1',
      versionId: interaction === 'vread' ? '2' : undefined,
      patientIds: ['pat-a'],
      query: interaction === 'search-type' ? 'subject=Patient/pat-a&code=1234' : undefined,
    });
    expect(e.type).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' });
    expect(e.subtype).toEqual([
      { system: 'http://hl7.org/fhir/restful-interaction', code: interaction, display: interaction },
    ]);
    expect(e.action).toBe(action);
    expect(e.outcome).toBe('0');
    expect(client(e)?.type?.coding?.[0]?.code).toBe(clientRole);
    expect(client(e)?.network).toEqual({ address: '192.0.2.10', type: '2' });
    expect(e.meta?.profile?.[0]).toBe(`https://profiles.ihe.net/ITI/BALP/StructureDefinition/${profile}`);
    expect(patientRefs(e)).toEqual(['Patient/pat-a']);
    expect(auditEventIssues(e)).toEqual([]);
  });

  test.each<[RestInteraction, string | undefined, string | undefined, string[]]>([
    ['read', 'obs-1', undefined, ['Observation/obs-1']],
    ['vread', 'obs-1', '3', ['Observation/obs-1/_history/3']],
    ['create', 'new-1', undefined, ['Observation/new-1']],
    ['create', undefined, undefined, ['Observation']],
    ['search-type', undefined, undefined, []],
  ])('%s id=%s version=%s → data entities %j', (interaction, id, versionId, expected) => {
    const e = fhirRestEvent(base, { interaction, resourceType: 'Observation', id, versionId });
    expect(dataRefs(e)).toEqual(expected);
  });

  test('a search records the raw query base64 in a BALP query entity', () => {
    const raw = "name=O'Brien&_count=5&evil=<script>";
    const e = fhirRestEvent(base, { interaction: 'search-type', resourceType: 'Patient', query: raw });
    const q = e.entity?.find((x) => x.role?.code === '24');
    expect(Buffer.from(q?.query ?? '', 'base64').toString('utf8')).toBe(`Patient?${raw}`);
    expect(q?.what).toBeUndefined();
    expect(e.meta?.profile?.[0]).toMatch(/IHE\.BasicAudit\.Query$/);
  });

  test('the user agent carries fhirUser, sub, roles, jti and purpose of use; request id is an entity', () => {
    const e = fhirRestEvent(base, { interaction: 'read', resourceType: 'Patient', id: 'pat-a', patientIds: ['pat-a'] });
    const u = user(e);
    expect(u?.who).toEqual({
      reference: 'Practitioner/dr-1',
      identifier: { value: 'user-7' },
      display: 'Practitioner/dr-1',
    });
    expect(u?.type?.coding?.map((c) => c.code)).toEqual(['IRCP', 'UserOauthAgent']);
    expect(u?.policy).toEqual(['urn:ietf:params:oauth:jti:tok-123']);
    expect(u?.role).toEqual([{ text: 'doctor' }]);
    expect(u?.purposeOfUse?.[0]?.coding?.[0]).toEqual({
      system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
      code: 'TREAT',
    });
    expect(client(e)?.who?.identifier?.value).toBe('viewer-app');
    expect(e.source?.observer?.identifier?.value).toBe('https://ehr.example.org');
    expect(e.entity?.find((x) => x.type?.code === 'XrequestId')?.what?.identifier?.value).toBe('req-1');
  });

  test.each([
    ['403 forbidden', '4', 'forbidden'],
    ['hidden 404', '4', 'not found (access denied)'],
    ['401 no token', '4', 'authentication required'],
  ])('a denial (%s) keeps the requested reference but never a patient entity', (_name, outcome, desc) => {
    const denied: AuditBase = { ...base, outcome: outcome as '4', outcomeDesc: desc, denied: true };
    const e = fhirRestEvent(denied, {
      interaction: 'read',
      resourceType: 'Observation',
      id: 'obs-9',
      patientIds: ['pat-hidden'],
    });
    expect(patientRefs(e)).toEqual([]);
    expect(JSON.stringify(e)).not.toContain('pat-hidden');
    expect(dataRefs(e)).toEqual(['Observation/obs-9']);
    expect(e.outcome).toBe(outcome);
    expect(e.outcomeDesc).toBe(desc);
    expect(e.meta).toBeUndefined();
    expect(auditEventIssues(e)).toEqual([]);
  });

  test('an unauthenticated request has no user agent and an unidentified client', () => {
    const e = fhirRestEvent({ ...base, agent: undefined, outcome: '4', denied: true }, { interaction: 'search-type' });
    expect(user(e)).toBeUndefined();
    expect(e.agent?.[0]?.who?.display).toBe('unauthenticated client');
    expect(auditEventIssues(e)).toEqual([]);
  });
});

test.each([
  [200, '0'],
  [201, '0'],
  [304, '0'],
  [400, '4'],
  [401, '4'],
  [403, '4'],
  [404, '4'],
  [422, '4'],
  [500, '8'],
  [503, '8'],
])('HTTP %i → outcome %s', (status, outcome) => {
  expect(outcomeForStatus(status)).toBe(outcome);
});

test.each([
  [['TREAT'], 'http://terminology.hl7.org/CodeSystem/v3-ActReason', 'TREAT'],
  [
    ['http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT'],
    'http://terminology.hl7.org/CodeSystem/v3-ActReason',
    'ETREAT',
  ],
  [['urn:oid:2.16.840.1.113883.5.8#HPAYMT'], 'urn:oid:2.16.840.1.113883.5.8', 'HPAYMT'],
])('purpose of use %j', (values, system, code) => {
  expect(purposeOfUse(values)?.[0]?.coding?.[0]).toEqual({ system, code });
});

describe('DICOMweb', () => {
  test('QIDO-RS is a DICOM Query with the query string base64', () => {
    const e = dicomQueryEvent(base, {
      path: '/studies',
      query: 'PatientID=MRN1&ModalitiesInStudy=CT',
      patientIds: ['pat-a'],
    });
    expect(e.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110112' });
    expect(e.action).toBe('E');
    const q = e.entity?.find((x) => x.role?.code === '24');
    expect(Buffer.from(q?.query ?? '', 'base64').toString()).toBe('/studies?PatientID=MRN1&ModalitiesInStudy=CT');
    expect(patientRefs(e)).toEqual(['Patient/pat-a']);
    expect(auditEventIssues(e)).toEqual([]);
  });

  test.each([
    ['retrieve', '110104', 'R', 'read'],
    ['store', '110104', 'C', 'create'],
  ])('%s → type %s action %s subtype %s with study UID entities', (kind, type, action, subtype) => {
    const studies = [{ studyUid: '1.2.3' }, { studyUid: '1.2.4', seriesUid: '1.2.4.1', instanceUid: '1.2.4.1.1' }];
    const e =
      kind === 'retrieve'
        ? dicomRetrieveEvent(base, { studies, patientIds: ['pat-a'] })
        : dicomStoreEvent(base, {
            studies,
            patientIds: ['pat-a'],
            order: { serviceRequestId: 'sr-1', accessionNumber: 'ACC9' },
          });
    expect(e.type?.code).toBe(type);
    expect(e.action).toBe(action);
    expect(e.subtype?.[0]?.code).toBe(subtype);
    const uids = e.entity?.filter((x) => x.what?.identifier?.type?.coding?.[0]?.code === '110180');
    expect(uids?.map((x) => x.what?.identifier?.value)).toEqual(['1.2.3', '1.2.4']);
    expect(uids?.[1]?.detail).toEqual([
      { type: 'SeriesInstanceUID', valueString: '1.2.4.1' },
      { type: 'SOPInstanceUID', valueString: '1.2.4.1.1' },
    ]);
    if (kind === 'store') {
      expect(dataRefs(e)).toEqual(['ServiceRequest/sr-1']);
      expect(JSON.stringify(e)).toContain('ACC9');
    }
    expect(auditEventIssues(e)).toEqual([]);
  });

  test('the record closing a transfer window carries its period and its counts on the study entity', () => {
    const transfer = {
      retrievals: 42,
      instances: 40,
      series: 2,
      frames: 40,
      bytes: 21_000_000,
      start: '2025-01-02T03:04:05.678Z',
      end: '2025-01-02T03:06:00.000Z',
    };
    const e = dicomRetrieveEvent(base, { studies: [{ studyUid: '1.2.3' }], patientIds: ['pat-a'], transfer });
    expect(e.type?.code).toBe('110104');
    expect(e.period).toEqual({ start: transfer.start, end: transfer.end });
    const study = e.entity?.find((x) => x.what?.identifier?.value === '1.2.3');
    expect(study?.detail).toEqual([
      { type: 'retrievals', valueString: '42' },
      { type: 'instances', valueString: '40' },
      { type: 'series', valueString: '2' },
      { type: 'frames', valueString: '40' },
      { type: 'bytes', valueString: '21000000' },
    ]);
    expect(auditEventIssues(e)).toEqual([]);
  });

  test('a denied store keeps the study UIDs sent but names neither patient nor order', () => {
    const e = dicomStoreEvent(
      { ...base, outcome: '4', denied: true },
      { studies: [{ studyUid: '1.2.3' }], patientIds: ['pat-b'], order: { serviceRequestId: 'sr-b' } },
    );
    expect(patientRefs(e)).toEqual([]);
    expect(JSON.stringify(e)).not.toMatch(/pat-b|sr-b/);
    expect(auditEventIssues(e)).toEqual([]);
  });
});

describe('authentication', () => {
  test.each([
    ['succeeded', '0'],
    ['failed', '4'],
  ])('login %s → User Authentication / Login, outcome %s', (_name, outcome) => {
    const e = loginEvent(
      { ...base, agent: undefined, outcome: outcome as '0' | '4' },
      { username: 'drsmith', user: outcome === '0' ? doctor : undefined },
    );
    expect(e.type?.code).toBe('110114');
    expect(e.subtype?.[0]?.code).toBe('110122');
    expect(user(e)?.name).toBe(outcome === '0' ? 'Practitioner/dr-1' : 'drsmith');
    expect(auditEventIssues(e)).toEqual([]);
  });

  test('token issued → ITI-71 with the jti and patient context, no token value', () => {
    const e = tokenIssuedEvent(
      { ...base, agent: undefined },
      {
        grantType: 'authorization_code',
        clientId: 'app-1',
        user: doctor,
        jti: 'j-42',
        scope: 'patient/*.rs',
        patientId: 'pat-a',
      },
    );
    expect(e.subtype?.[0]).toMatchObject({ system: 'urn:ihe:event-type-code', code: 'ITI-71' });
    expect(e.agent?.map((a) => a.type?.coding?.[0]?.code)).toEqual(['IRCP', '110150', 'AuthzOauthService']);
    expect(client(e)?.who?.identifier?.value).toBe('app-1');
    expect(e.entity?.find((x) => x.role?.code === '13')?.what?.identifier?.value).toBe(
      'urn:ietf:params:oauth:jti:j-42',
    );
    expect(patientRefs(e)).toEqual(['Patient/pat-a']);
    expect(auditEventIssues(e)).toEqual([]);
  });

  test('client assertion refused → Security Alert / Node Authentication, outcome 4', () => {
    const e = clientAssertionRefusedEvent(
      { ...base, agent: undefined },
      { clientId: 'backend-1', reason: 'jti replayed' },
    );
    expect(e.type?.code).toBe('110113');
    expect(e.subtype?.[0]?.code).toBe('110126');
    expect(e.outcome).toBe('4');
    expect(e.outcomeDesc).toBe('client assertion refused: jti replayed');
    expect(e.agent?.[0]?.who?.identifier?.value).toBe('backend-1');
    expect(auditEventIssues(e)).toEqual([]);
  });
});

test('the validator catches a broken event (so the checks above can fail)', () => {
  const e = fhirRestEvent(base, { interaction: 'read', resourceType: 'Patient', id: 'x' });
  const broken = { ...e, agent: [], outcome: 'nope' } as unknown as AuditEvent;
  expect(auditEventIssues(broken).length).toBeGreaterThan(0);
});
