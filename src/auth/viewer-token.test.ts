import { decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, test } from 'vitest';
import { accessFor } from './token-access.ts';
import { imagingAccess } from './imaging-access.ts';
import { parseScopes } from './scopes.ts';
import {
  isStudyUid,
  MAX_VIEWER_TOKEN_TTL_S,
  mintViewerToken,
  VIEWER_SCOPE,
  VIEWER_STUDY_CLAIM,
} from './viewer-token.ts';

const S = '1.2.826.0.1.3680043.8.498.1';
const OTHER = '1.2.826.0.1.3680043.8.498.2';

describe('a viewer token is an Access of kind viewer, limited to its study', () => {
  const viewer = accessFor(
    { scopes: parseScopes(VIEWER_SCOPE), roles: [], patientSets: {}, patient: 'pat-1', studies: [S] },
    { who: 'User/u1', sub: 'u1', roles: [] },
  );
  test('its kind and study limit', () => {
    expect(viewer.kind).toBe('viewer');
    expect(viewer.studies).toEqual([S]);
    expect(imagingAccess(viewer).studies()).toEqual([S]);
  });
  test.each([
    [[S], false],
    [[undefined], false],
    [[S, undefined], false],
    [[OTHER], true],
    [[S, OTHER], true],
  ] as const)('a search or path naming %j is outside its study: %s', (uids, outside) => {
    expect(imagingAccess(viewer).excludesAny(uids)).toBe(outside);
  });
  test('its scope still reads only its patient; other callers have no study limit', () => {
    expect(imagingAccess(viewer).mayRead('pat-1')).toBe(true);
    expect(imagingAccess(viewer).mayRead('pat-2')).toBe(false);
    const user = accessFor(
      { scopes: parseScopes(VIEWER_SCOPE), roles: [], patientSets: {}, patient: 'pat-1' },
      { who: 'User/u1', sub: 'u1', roles: [] },
    );
    expect(user.kind).toBe('patient');
    expect(imagingAccess(user).excludesAny([OTHER])).toBe(false);
  });
});

describe('helpers', () => {
  test.each([
    [S, true],
    ['2.25.123456789012345678901234567890', true],
    ['1.2.', false],
    ['1..2', false],
    ['1.2.3a', false],
    [`1.${'2'.repeat(64)}`, false],
    ['', false],
  ])('isStudyUid(%s) → %s', (uid, ok) => {
    expect(isStudyUid(uid)).toBe(ok);
  });
});

describe('mintViewerToken', () => {
  const request = {
    issuer: 'http://ehr.test/auth',
    audience: 'http://ehr.test/fhir',
    sub: 'user-1',
    fhirUser: 'Practitioner/p1',
    patientId: 'pat-1',
    studyInstanceUid: S,
  };

  test.each([
    [600, 600],
    [900, 900],
    [3600, MAX_VIEWER_TOKEN_TTL_S],
  ])('a lifetime of %ss gives a token valid for %ss, signed with the given key', async (ttlS, expected) => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = 'k1';
    const minted = await mintViewerToken({ kid, alg: 'ES256', key: privateKey }, { ...request, ttlS });
    const { payload } = await jwtVerify(minted.token, publicKey, {
      issuer: request.issuer,
      audience: request.audience,
    });
    expect(decodeProtectedHeader(minted.token)).toMatchObject({ alg: 'ES256', kid, typ: 'at+jwt' });
    expect(payload).toMatchObject({
      sub: 'user-1',
      fhirUser: 'Practitioner/p1',
      patient: 'pat-1',
      scope: VIEWER_SCOPE,
      [VIEWER_STUDY_CLAIM]: S,
      jti: minted.jti,
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(expected);
    expect(minted.expiresAt.getTime()).toBe((payload.exp ?? 0) * 1000);
  });

  test('refuses a value that is not a UID', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    await expect(
      mintViewerToken({ kid: 'k', alg: 'ES256', key: privateKey }, { ...request, studyInstanceUid: 'x', ttlS: 60 }),
    ).rejects.toThrow('not a StudyInstanceUID');
  });

  test('a past issue time gives an already expired token', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const now = Math.floor(Date.now() / 1000) - 3600;
    const minted = await mintViewerToken({ kid: 'k', alg: 'ES256', key: privateKey }, { ...request, ttlS: 60, now });
    expect((decodeJwt(minted.token).exp ?? 0) * 1000).toBeLessThan(Date.now());
  });
});
