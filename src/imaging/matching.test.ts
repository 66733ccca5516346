import { describe, expect, test } from 'vitest';
import type { Access, PatientFilter } from '../auth/access.ts';
import type { DicomInstance } from './dicom-instance.ts';
import { decideMatch, type MatchLookup, mayStoreImaging } from './matching.ts';
import { ORDER_STATUS_ON_IMAGES, orderTransition } from './order-status.ts';

const inst: DicomInstance = {
  sopClassUid: '1.2',
  sopInstanceUid: '1.2.3.1',
  studyInstanceUid: '1.2.3',
  seriesInstanceUid: '1.2.3.4',
  patientId: 'MRN-A',
  accessionNumber: 'ACC-A',
};
const patient = { id: 'pa', mrn: 'MRN-A' };
const order = { id: 'oa', accession: 'ACC-A', patientId: 'pa', status: 'active' as const, studyInstanceUid: null };

describe('decideMatch', () => {
  test.each<[string, Partial<DicomInstance>, MatchLookup, string]>([
    ['all match', {}, { patient, order }, 'matched'],
    ['order already linked to this study', {}, { patient, order: { ...order, studyInstanceUid: '1.2.3' } }, 'matched'],
    ['study already recorded for the patient', {}, { patient, order, study: { id: 's', patientId: 'pa' } }, 'matched'],
    ['completed order takes more images', {}, { patient, order: { ...order, status: 'completed' } }, 'matched'],
    ['unknown patient', {}, { order }, 'unknown-patient'],
    ['no accession', { accessionNumber: undefined }, { patient }, 'no-accession'],
    ['unknown order', {}, { patient }, 'unknown-order'],
    ['order of another patient', {}, { patient, order: { ...order, patientId: 'pb' } }, 'order-other-patient'],
    ['order without subject', {}, { patient, order: { ...order, patientId: null } }, 'order-other-patient'],
    ['revoked order', {}, { patient, order: { ...order, status: 'revoked' } }, 'order-not-actionable'],
    ['draft order', {}, { patient, order: { ...order, status: 'draft' } }, 'order-not-actionable'],
    [
      'order linked to another study',
      {},
      { patient, order: { ...order, studyInstanceUid: '9.9' } },
      'order-other-study',
    ],
    ['study of another patient', {}, { patient, order, study: { id: 's', patientId: 'pb' } }, 'study-other-patient'],
    [
      'study linked to another patient, unseen by the caller',
      {},
      { patient, order, studyLink: { patientId: 'pb', orderId: 'ob' } },
      'study-other-patient',
    ],
    [
      'study linked to another order of the patient',
      {},
      { patient, order, studyLink: { patientId: 'pa', orderId: 'o2' } },
      'study-other-order',
    ],
    ['study linked to this order', {}, { patient, order, studyLink: { patientId: 'pa', orderId: 'oa' } }, 'matched'],
    [
      'demographics contradict the EHR',
      { patientName: 'Doe^John', patientSex: 'M' },
      {
        patient: { ...patient, demographics: { names: [{ family: 'Smith', given: ['Jane'] }], gender: 'female' } },
        order,
      },
      'demographics-mismatch',
    ],
    [
      'demographics agree',
      { patientName: 'SMITH^JANE', patientSex: 'F' },
      {
        patient: { ...patient, demographics: { names: [{ family: 'Smith', given: ['Jane'] }], gender: 'female' } },
        order,
      },
      'matched',
    ],
  ])('%s → %s', (_name, change, lookup, want) => {
    const r = decideMatch({ ...inst, ...change }, lookup);
    expect(r.matched ? 'matched' : r.code).toBe(want);
    if (!r.matched) {
      expect(r.comment.length).toBeLessThanOrEqual(64);
      expect(r.detail.length).toBeGreaterThan(10);
      expect(r.patient).toEqual(lookup.patient);
    }
  });
});

test('a user-reviewed link skips the demographic comparison', () => {
  const lookup = { patient: { ...patient, demographics: { gender: 'female' } }, order };
  expect(decideMatch({ ...inst, patientSex: 'M' }, lookup).matched).toBe(false);
  expect(decideMatch({ ...inst, patientSex: 'M' }, lookup, { demographics: false }).matched).toBe(true);
});

describe('order status on images (documented mapping)', () => {
  test.each([
    ['active', 'completed'],
    ['on-hold', 'completed'],
    ['completed', 'completed'],
    ['unknown', 'completed'],
    ['draft', 'refused'],
    ['revoked', 'refused'],
    ['entered-in-error', 'refused'],
  ] as const)('%s → %s', (before, after) => {
    const t = orderTransition(before);
    expect(t.accept ? t.status : 'refused').toBe(after);
  });
  test('every FHIR request status is covered', () => {
    expect(Object.keys(ORDER_STATUS_ON_IMAGES).sort()).toEqual(
      ['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown'].sort(),
    );
  });
});

/** An unrestricted backend client (all patients, every interaction). */
const UNRESTRICTED: Access = {
  kind: 'system',
  agent: { who: 'test-client', sub: 'test-client', roles: [] },
  allows: () => true,
  patientFilter: () => ({ all: true }),
  restrictions: () => [],
};

function access(canCreate: boolean, filter: PatientFilter): Access {
  return {
    ...UNRESTRICTED,
    kind: 'user',
    allows: (i, t) => canCreate && i === 'create' && t === 'ImagingStudy',
    patientFilter: () => filter,
  };
}

describe('mayStoreImaging', () => {
  test.each([
    ['unrestricted', UNRESTRICTED, 'pa', true],
    ['unrestricted, unknown patient', UNRESTRICTED, undefined, true],
    ['all patients', access(true, { all: true }), 'pb', true],
    ['granted patient', access(true, { all: false, patientIds: ['pa'] }), 'pa', true],
    ['other patient', access(true, { all: false, patientIds: ['pa'] }), 'pb', false],
    ['restricted, unknown patient', access(true, { all: false, patientIds: ['pa'] }), undefined, false],
    ['no create right', access(false, { all: true }), 'pa', false],
  ])('%s → %s', (_n, a, patientId, want) => expect(mayStoreImaging(a, patientId)).toBe(want));
});
