import { describe, expect, test } from 'vitest';
import { idleRefusal, viewerClaimsOf } from './renew.ts';

const S = '1.2.826.0.1.3680043.8.498.1';
const base = {
  sub: 'u1',
  jti: 'j1',
  iat: 1000,
  exp: 1600,
  patient: 'p1',
  client_id: 'ehr-viewer-link',
  ehr_viewer_study: S,
};

describe('viewerClaimsOf', () => {
  test.each([
    ['a one-study token', base, { reach: 'study', sessionId: 'j1' }],
    [
      'a patient-reach token',
      { ...base, ehr_viewer_reach: 'patient', ehr_viewer_sid: 's1' },
      { reach: 'patient', sessionId: 's1' },
    ],
    ['an unknown reach is the narrowest', { ...base, ehr_viewer_reach: 'all' }, { reach: 'study' }],
  ])('%s', (_name, claims, expected) => {
    expect(viewerClaimsOf(claims)).toMatchObject({ sub: 'u1', patient: 'p1', study: S, ...expected });
  });

  test.each([
    ['another client', { ...base, client_id: 'ohif-viewer' }],
    ['no study', { ...base, ehr_viewer_study: undefined }],
    ['a study that is no UID', { ...base, ehr_viewer_study: '1.2.x' }],
    ['no patient', { ...base, patient: undefined }],
    ['no jti', { ...base, jti: undefined }],
    ['no exp', { ...base, exp: undefined }],
  ])('not a viewer token: %s', (_name, claims) => {
    expect(viewerClaimsOf(claims as Record<string, unknown>)).toBeUndefined();
  });
});

describe('idleRefusal', () => {
  test.each([
    [0, 1800, false],
    [1799, 1800, false],
    [1800, 1800, true],
    [99999, 1800, true],
    [undefined, 1800, false],
    ['1900', 1800, false],
    [Number.NaN, 1800, false],
  ])('idle %s s with an idle time of %s s → refused: %s', (idle, timeout, refused) => {
    const r = idleRefusal(idle, timeout);
    expect(r !== undefined).toBe(refused);
    if (r) expect(r).toMatchObject({ statusCode: 401, error: 'idle' });
  });
});
