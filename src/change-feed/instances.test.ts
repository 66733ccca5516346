import { describe, expect, test } from 'vitest';
import { instanceFromOrthancTags, missingAttributes, reasonFromMismatch } from './instances.ts';
import { firstPhase } from './relink.ts';
import { mayReconcile } from './routes.ts';
import type { Access } from '../auth/access.ts';

const tags = {
  '0008,0016': '1.2.840.10008.5.1.4.1.1.2',
  '0008,0018': '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322',
  '0020,000d': '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
  '0020,000e': '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322',
  '0010,0020': 'MRN1',
  '0008,0050': 'ACC1',
  '0008,0060': 'CT',
  '0020,0011': '1',
  '0020,0013': ' 7 ',
  '0008,0020': '20040119',
  '0008,1030': '',
};

describe('instanceFromOrthancTags', () => {
  test('maps the main attributes and drops empty ones', () => {
    expect(instanceFromOrthancTags(tags)).toEqual({
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322',
      studyInstanceUid: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
      seriesInstanceUid: '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322',
      patientId: 'MRN1',
      accessionNumber: 'ACC1',
      modality: 'CT',
      seriesNumber: 1,
      instanceNumber: 7,
      studyDate: '20040119',
    });
  });
  test('reads the demographics compared with the EHR', () => {
    const got = instanceFromOrthancTags({
      ...tags,
      '0010,0010': 'Doe^John',
      '0010,0030': '19010101',
      '0010,0040': 'M ',
    });
    expect(got).toMatchObject({ patientName: 'Doe^John', patientBirthDate: '19010101', patientSex: 'M' });
  });
  test.each([
    ['no PatientID', { '0010,0020': undefined }],
    ['empty PatientID', { '0010,0020': '  ' }],
    ['no SOPClassUID', { '0008,0016': undefined }],
    ['malformed StudyInstanceUID', { '0020,000d': '1.2.03' }],
    ['sequence instead of a value', { '0010,0020': [{ '0010,0020': 'x' }] }],
  ])('%s → undefined', (_name, patch) => {
    expect(instanceFromOrthancTags({ ...tags, ...patch })).toBeUndefined();
  });
});

describe('missingAttributes (the detail of missing-identifiers)', () => {
  test.each([
    ['complete', {}, undefined],
    ['no PatientID', { '0010,0020': undefined }, 'no PatientID'],
    ['no SOPClassUID, no PatientID', { '0008,0016': ' ', '0010,0020': undefined }, 'no SOPClassUID, no PatientID'],
    ['malformed StudyInstanceUID', { '0020,000d': '1.2.03' }, 'malformed StudyInstanceUID'],
    ['sequence instead of a value', { '0010,0020': [{ '0010,0020': 'x' }] }, 'no PatientID'],
  ])('%s → %s', (_name, patch, expected) => {
    expect(missingAttributes({ ...tags, ...patch })).toBe(expected);
  });
});

describe('reasonFromMismatch', () => {
  test.each([
    ['unknown-patient', 'unknown-mrn'],
    ['no-accession', 'missing-identifiers'],
    ['unknown-order', 'unknown-accession'],
    ['order-other-patient', 'patient-order-mismatch'],
    ['study-other-patient', 'patient-order-mismatch'],
    ['order-not-actionable', 'order-not-actionable'],
    ['order-other-study', 'order-linked-elsewhere'],
    ['study-other-order', 'order-linked-elsewhere'],
    ['demographics-mismatch', 'patient-order-mismatch'],
  ] as const)('%s → %s', (code, reason) => {
    expect(reasonFromMismatch(code)).toBe(reason);
  });
});

describe('firstPhase of a re-link', () => {
  test.each([
    ['MRN1', 'MRN1', 'to-temporary'],
    ['WRONG', 'MRN1', 'to-final'],
    [null, 'MRN1', 'to-final'],
    ['', 'MRN1', 'to-final'],
  ] as const)('PatientID %s → MRN %s: %s', (current, target, phase) => {
    expect(firstPhase(current, target)).toBe(phase);
  });
});

describe('mayReconcile (deny by default)', () => {
  const access = (kind: Access['kind'], roles: string[]): Access => ({
    kind,
    agent: { who: 'u', sub: 'u', roles },
    allows: () => true,
    patientFilter: () => ({ all: true }),
    restrictions: () => [],
  });
  test.each([
    ['no access context', undefined, false],
    ['admin user', access('user', ['admin']), true],
    ['radiologist user', access('user', ['doctor', 'radiologist']), true],
    ['doctor', access('user', ['doctor']), false],
    ['nurse', access('user', ['nurse']), false],
    ['auditor', access('user', ['auditor']), false],
    ['user without roles', access('user', []), false],
    ['patient app, even claiming admin', access('patient', ['admin']), false],
    ['backend system client', access('system', ['admin']), false],
    ['viewer token', access('viewer', ['radiologist']), false],
  ])('%s → %s', (_name, a, allowed) => {
    expect(mayReconcile(a)).toBe(allowed);
  });
});
