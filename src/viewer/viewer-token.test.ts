import { decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, test } from 'vitest';
import {
  bearerOf,
  checkViewerUse,
  isStudyUid,
  MAX_VIEWER_TOKEN_TTL_S,
  mintViewerToken,
  VIEWER_SCOPE,
  VIEWER_REACH_CLAIM,
  VIEWER_SESSION_CLAIM,
  VIEWER_STUDY_CLAIM,
  viewerReachOf,
  viewerStudyOf,
} from './viewer-token.ts';

const S = '1.2.826.0.1.3680043.8.498.1';
const OTHER = '1.2.826.0.1.3680043.8.498.2';

describe('checkViewerUse', () => {
  test.each([
    ['GET', `/dicom-web/studies/${S}`, true, undefined],
    ['HEAD', `/dicom-web/studies/${S}/series`, true, undefined],
    ['GET', `/dicom-web/studies/${S}/series?includefield=0008103E`, true, undefined],
    ['GET', `/dicom-web/studies/${S}/series/1.2/metadata`, true, undefined],
    ['GET', `/dicom-web/studies/${S}/series/1.2/instances/1.3/frames/1`, true, undefined],
    [
      'GET',
      `/dicom-web/studies?limit=101&offset=0&includefield=00081030%2C00080060&StudyInstanceUID=${S}`,
      true,
      undefined,
    ],
    ['GET', `/dicom-web/studies?0020000D=${S}`, true, undefined],
    ['GET', `/dicom-web/studies?StudyInstanceUID=${S},${S}`, true, undefined],
    // another study, or a search wider than the study: nothing to see
    ['GET', `/dicom-web/studies/${OTHER}`, false, 404],
    ['GET', `/dicom-web/studies/${OTHER}/series/1.2/metadata`, false, 404],
    ['GET', `/dicom-web/studies?StudyInstanceUID=${S},${OTHER}`, false, 404],
    ['GET', `/dicom-web/studies?StudyInstanceUID=${S}&StudyInstanceUID=${OTHER}`, false, 404],
    ['GET', '/dicom-web/studies?PatientName=*', false, 200],
    ['GET', '/dicom-web/studies?00100020=P1&limit=101', false, 200],
    ['GET', '/dicom-web/studies', false, 200],
    ['GET', '/dicom-web/studies?StudyInstanceUID=', false, 404],
    ['GET', '/dicom-web/series', false, 404],
    ['GET', '/dicom-web/instances', false, 404],
    ['GET', `/dicom-web/wado?requestType=WADO&studyUID=${S}`, false, 404],
    ['GET', `/dicom-web/studies/${S}%2F..%2F${OTHER}`, false, 404],
    ['GET', `/dicom-web/studies/${S}/../${OTHER}`, false, 404],
    ['GET', `/dicom-web//studies/${S}`, false, 404],
    // not a DICOMweb read: the token is no credential there
    ['POST', '/dicom-web/studies', false, 401],
    ['POST', `/dicom-web/studies/${S}`, false, 401],
    ['DELETE', `/dicom-web/studies/${S}`, false, 401],
    ['GET', `/fhir/ImagingStudy?identifier=urn:oid:${S}`, false, 401],
    ['GET', '/fhir/Patient', false, 401],
    ['GET', '/api/v1/dicom/viewer-url/o1', false, 401],
    ['GET', '/auth/userinfo', false, 401],
    ['GET', '/viewer', false, 401],
    ['GET', `/dicom-webx/studies/${S}`, false, 401],
  ])('%s %s → %s', (method, url, allowed, status) => {
    const use = checkViewerUse(method, url, S);
    expect(use.allowed).toBe(allowed);
    if (!use.allowed) expect(use.status).toBe(status);
  });
});

describe('checkViewerUse with a patient-reach token', () => {
  test.each([
    // any study read and any study search: the patient filter of the normal authorization decides
    ['GET', `/dicom-web/studies/${OTHER}/series/1.2/metadata`, true, undefined],
    ['GET', '/dicom-web/studies?PatientID=P1', true, undefined],
    ['HEAD', `/dicom-web/studies/${S}`, true, undefined],
    // still reads only, still literally under /dicom-web/studies
    ['POST', '/dicom-web/studies', false, 401],
    ['DELETE', `/dicom-web/studies/${OTHER}`, false, 401],
    ['GET', '/fhir/Patient', false, 401],
    ['GET', '/dicom-web/series', false, 404],
    ['GET', `/dicom-web/studies/${S}/../${OTHER}`, false, 404],
    ['GET', `/dicom-web/studies/${S}%2F..`, false, 404],
  ])('%s %s → %s', (method, url, allowed, status) => {
    const use = checkViewerUse(method, url, S, 'patient');
    expect(use.allowed).toBe(allowed);
    if (!use.allowed) expect(use.status).toBe(status);
  });
});

describe('helpers', () => {
  test.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer  abc', 'abc'],
    ['Basic Zm9vOmJhcg==', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('bearerOf(%s) → %s', (header, token) => {
    expect(bearerOf(header)).toBe(token);
  });

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

  test.each([
    ['not-a-jwt', undefined],
    ['a.!!!.c', undefined],
    [`x.${Buffer.from(JSON.stringify({ sub: 'u' })).toString('base64url')}.y`, undefined],
    [`x.${Buffer.from(JSON.stringify({ [VIEWER_STUDY_CLAIM]: S })).toString('base64url')}.y`, S],
    [`x.${Buffer.from(JSON.stringify({ [VIEWER_STUDY_CLAIM]: 7 })).toString('base64url')}.y`, undefined],
  ])('viewerStudyOf(%s) → %s', (token, study) => {
    expect(viewerStudyOf(token)).toBe(study);
  });

  const jwt = (claims: object) => `x.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.y`;
  test.each([
    [jwt({ [VIEWER_REACH_CLAIM]: 'patient' }), 'patient'],
    [jwt({ [VIEWER_REACH_CLAIM]: 'study' }), 'study'],
    [jwt({ [VIEWER_REACH_CLAIM]: 'everything' }), 'study'],
    [jwt({}), 'study'],
    ['not-a-jwt', 'study'],
  ])('viewerReachOf(%s) → %s', (token, reach) => {
    expect(viewerReachOf(token)).toBe(reach);
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
    expect(payload[VIEWER_REACH_CLAIM]).toBe('study');
    expect(payload[VIEWER_SESSION_CLAIM]).toBe(minted.sessionId);
  });

  test.each([
    ['patient', 'sid-1'],
    ['study', 'sid-2'],
  ] as const)('a %s-reach token keeps the session %s it is given', async (reach, sessionId) => {
    const { privateKey } = await generateKeyPair('ES256');
    const minted = await mintViewerToken(
      { kid: 'k', alg: 'ES256', key: privateKey },
      { ...request, ttlS: 60, reach, sessionId },
    );
    expect(decodeJwt(minted.token)).toMatchObject({ [VIEWER_REACH_CLAIM]: reach, [VIEWER_SESSION_CLAIM]: sessionId });
    expect(minted.sessionId).toBe(sessionId);
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
