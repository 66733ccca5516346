import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintViewerToken } from '../../src/auth/viewer-token.ts';
import { revokeGrant } from '../../src/auth/user-admin.ts';
import { adminToken, bearer, ensureUser } from '../helpers/auth.ts';
import { eventOf } from '../helpers/audit.ts';
import { type ListeningFacade, startFacade } from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { type Auth, addOrder, type Booked, bookPatientAndOrder, type Doctor, doctor, stow } from './helpers/ehr.ts';

/**
 * The viewer over HTTP (no browser): the OHIF build served from the facade's origin without shadowing the API, and
 * viewer links with their study-scoped tokens, allowed and refused.
 */

let f: ListeningFacade;
let admin: Auth;
let a: Booked & { study: string };
let b: Booked & { study: string };
let dr: Doctor;
/** A second study of patient A, on another order. */
let a2: string;

async function booked(family: string): Promise<Booked & { study: string }> {
  const o = await bookPatientAndOrder(f.app, admin, family);
  const series = ctSeries({
    patientId: o.mrn,
    patientName: `${family}^Viewer`,
    studyInstanceUid: newUid(),
    slices: 2,
    size: 32,
    accessionNumber: o.accession,
  });
  await stow(f.app, admin, series.files);
  return { ...o, study: series.studyInstanceUid };
}

beforeAll(async () => {
  f = await startFacade();
  admin = bearer(await adminToken(f.app));
  a = await booked('Http-A');
  b = await booked('Http-B');
  dr = await doctor(f.app, 'dr-http', [a.patientId]);
  // A second study of patient A, on another order.
  const second = await addOrder(f.app, admin, a.patientId);
  a2 = newUid();
  await stow(
    f.app,
    admin,
    ctSeries({
      patientId: a.mrn,
      patientName: 'Http-A^Viewer',
      studyInstanceUid: a2,
      slices: 1,
      size: 32,
      accessionNumber: second.accession,
    }).files,
  );
}, 120_000);

afterAll(async () => {
  await f?.app.close();
});

const get = (url: string, headers: Record<string, string> = {}) => f.app.inject({ method: 'GET', url, headers });

describe('OHIF served from the facade', () => {
  test.each(['/', '/viewer', '/viewer?StudyInstanceUIDs=1.2.3', '/viewer/dicomweb', '/callback?code=x&state=y'])(
    '%s answers OHIF index.html without a token',
    async (url) => {
      const res = await get(url);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('<div id="root"></div>');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
    },
  );

  test('/app-config.js is ours, and the build files are served with their types', async () => {
    const config = await get('/app-config.js');
    expect(config.statusCode).toBe(200);
    expect(config.headers['content-type']).toMatch(/javascript/);
    expect(config.body).toContain('qidoSupportsIncludeField: true');
    expect(config.body).toContain('/dicom-web');
    const index = await get('/');
    const bundle = /src="\/(app\.bundle\.[0-9a-f]+\.js)"/.exec(index.body)?.[1];
    expect(bundle).toBeDefined();
    const js = await get(`/${bundle}`);
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect(js.headers['cache-control']).toContain('immutable');
  });

  test('build files go Brotli- or gzip-compressed to a client that accepts it, as they are to one that does not', async () => {
    const index = await get('/');
    const bundle = /src="\/(app\.bundle\.[0-9a-f]+\.js)"/.exec(index.body)?.[1];
    const plain = await get(`/${bundle}`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    const br = await get(`/${bundle}`, { 'accept-encoding': 'gzip, deflate, br, zstd' });
    const gz = await get(`/${bundle}`, { 'accept-encoding': 'gzip' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(gz.headers['content-encoding']).toBe('gzip');
    for (const res of [br, gz]) {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/javascript/);
      expect(res.headers['cache-control']).toContain('immutable');
      expect(String(res.headers['vary'])).toMatch(/accept-encoding/i);
      expect(res.rawPayload.length).toBeLessThan(plain.rawPayload.length / 3);
    }
    expect(brotliDecompressSync(br.rawPayload).equals(plain.rawPayload)).toBe(true);
    expect(gunzipSync(gz.rawPayload).equals(plain.rawPayload)).toBe(true);
    // The compressed copies are no routes of their own.
    expect((await get(`/${bundle}.br`, admin)).statusCode).toBe(404);
  });

  test.each([
    '/fhir/NoSuchType',
    '/dicom-web/nothing-here',
    '/api/v1/nothing',
    '/auth/nothing',
    '/missing.js',
    '/nothing',
  ])('%s is never answered with OHIF', async (url) => {
    const res = await get(url, admin);
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.body).not.toContain('<div id="root">');
  });

  test('the API still needs a token next to the public viewer files', async () => {
    expect((await get('/fhir/Patient')).statusCode).toBe(401);
    expect((await get(`/dicom-web/studies/${a.study}/series`)).statusCode).toBe(401);
  });

  test('without the build, the viewer paths say how to install it and the API works', async () => {
    const bare = await startFacade({ ohifDistDir: '/nonexistent/ohif' });
    try {
      const res = await bare.app.inject({ method: 'GET', url: '/viewer?StudyInstanceUIDs=1.2' });
      expect(res.statusCode).toBe(503);
      expect(res.body).toContain('make up');
      expect((await bare.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await bare.app.close();
    }
  });
});

interface ViewerLinkBody {
  viewer_url: string;
  expires_at: string;
}

/** The viewer token of a viewer URL (in its fragment). */
function tokenOf(viewerUrl: string): string {
  const token = new URLSearchParams(new URL(viewerUrl).hash.slice(1)).get('token');
  if (!token) throw new Error(`no token in ${viewerUrl}`);
  return token;
}

describe('viewer links', () => {
  let link: ViewerLinkBody;
  let viewer: Auth;

  beforeAll(async () => {
    // A link shared for one study: the narrowest viewer token.
    const res = await get(`/api/v1/dicom/viewer-url/${a.orderId}?share=study`, dr.auth);
    expect(res.statusCode, res.body).toBe(200);
    link = res.json() as ViewerLinkBody;
    viewer = bearer(tokenOf(link.viewer_url));
  });

  test("the order's doctor gets an OHIF URL on the order's study with a new short-lived token", async () => {
    const url = new URL(link.viewer_url);
    expect(url.origin).toBe(f.baseUrl);
    expect(url.pathname).toBe('/viewer');
    expect(url.searchParams.get('StudyInstanceUIDs')).toBe(a.study);
    expect(url.search).not.toContain('token');
    const claims = decodeJwt(viewer.authorization.slice('Bearer '.length));
    expect(claims).toMatchObject({
      ehr_viewer_study: a.study,
      ehr_viewer_reach: 'study',
      patient: a.patientId,
      scope: 'patient/ImagingStudy.rs',
    });
    expect(viewer.authorization).not.toBe(dr.auth.authorization);
    const ttl = (claims.exp ?? 0) - (claims.iat ?? 0);
    expect(ttl).toBe(f.config.viewerTokenTtlS);
    expect(ttl).toBeLessThanOrEqual(900);
    expect(Date.parse(link.expires_at)).toBe((claims.exp ?? 0) * 1000);
  });

  test('the link is audited as a token issued to the doctor, by jti', async () => {
    const res = await get(`/api/v1/dicom/viewer-url/${a.orderId}`, dr.auth);
    const event = await eventOf(f.app, res);
    expect(event.outcome).toBe('0');
    const jti = decodeJwt(tokenOf((res.json() as ViewerLinkBody).viewer_url)).jti;
    expect(JSON.stringify(event)).toContain(String(jti));
    expect(JSON.stringify(event)).not.toContain(tokenOf((res.json() as ViewerLinkBody).viewer_url));
  });

  test('the FHIR form answers a Parameters resource', async () => {
    const res = await get(`/fhir/ServiceRequest/${a.orderId}/$viewer-url`, dr.auth);
    expect(res.statusCode, res.body).toBe(200);
    const p = res.json() as { resourceType: string; parameter: { name: string; valueUrl?: string }[] };
    expect(p.resourceType).toBe('Parameters');
    const url = p.parameter.find((x) => x.name === 'viewer_url')?.valueUrl ?? '';
    expect(new URL(url).searchParams.get('StudyInstanceUIDs')).toBe(a.study);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  test.each([
    ['no token', () => ({}), () => a.orderId, 401],
    ["another patient's order", () => dr.auth, () => b.orderId, 404],
    ['an unknown order', () => dr.auth, () => 'no-such-order', 404],
    ['a malformed id', () => dr.auth, () => 'bad$id', 400],
  ])('refused: %s', async (_name, headers, order, status) => {
    const res = await get(`/api/v1/dicom/viewer-url/${order()}`, headers());
    expect(res.statusCode).toBe(status);
    expect(res.body).not.toContain('token=');
    const fhir = await get(`/fhir/ServiceRequest/${order()}/$viewer-url`, headers());
    expect(fhir.statusCode).toBe(status);
  });

  test('an order without images yet gets 409, FHIR-style an OperationOutcome', async () => {
    const empty = await addOrder(f.app, admin, a.patientId);
    const res = await get(`/api/v1/dicom/viewer-url/${empty.orderId}`, dr.auth);
    expect(res.statusCode).toBe(409);
    const fhir = await get(`/fhir/ServiceRequest/${empty.orderId}/$viewer-url`, dr.auth);
    expect(fhir.statusCode).toBe(409);
    expect(fhir.json()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'business-rule' }] });
  });

  test('a viewer token reads its study over DICOMweb', async () => {
    const qido = await get(`/dicom-web/studies?StudyInstanceUID=${a.study}&includefield=00081030`, viewer);
    expect(qido.statusCode, qido.body).toBe(200);
    expect(qido.json()).toHaveLength(1);
    const series = await get(`/dicom-web/studies/${a.study}/series`, viewer);
    expect(series.statusCode).toBe(200);
    const uid = (series.json() as Record<string, { Value: string[] }>[])[0]?.['0020000E']?.Value[0];
    expect((await get(`/dicom-web/studies/${a.study}/series/${uid}/metadata`, viewer)).statusCode).toBe(200);
  });

  test.each([
    ['GET', () => `/dicom-web/studies/${b.study}/series`, 404],
    ['GET', () => `/dicom-web/studies?StudyInstanceUID=${b.study}`, 404],
    ['GET', () => '/fhir/ImagingStudy', 401],
    ['GET', () => `/fhir/Patient/${a.patientId}`, 403],
    ['GET', () => `/api/v1/dicom/viewer-url/${a.orderId}`, 401],
    ['POST', () => '/dicom-web/studies', 401],
  ])('a viewer token is refused for %s %s', async (method, url, status) => {
    const res = await f.app.inject({ method: method as 'GET' | 'POST', url: url(), headers: viewer });
    expect(res.statusCode).toBe(status);
    expect(res.body).not.toContain(a.study);
  });

  test("a viewer token's search for the patient's studies sees only its own study", async () => {
    // A's patient has two studies (the admin sees both); the viewer token's search is narrowed to its study.
    const all = await get(`/dicom-web/studies?00100020=${a.mrn}`, admin);
    expect(all.json()).toHaveLength(2);
    const res = await get(`/dicom-web/studies?00100020=${a.mrn}`, viewer);
    expect(res.statusCode).toBe(200);
    const uids = (res.json() as Record<string, { Value: string[] }>[]).map((s) => s['0020000D']?.Value[0]);
    expect(uids).toEqual([a.study]);
    const other = await get(`/dicom-web/studies?00100020=${b.mrn}`, viewer);
    expect(other.statusCode).toBe(200);
    expect(other.json()).toEqual([]);
  });

  test('the study limit is the same study authorization and QIDO-RS as for every caller', async () => {
    // A series search without a study: only the token's study's series.
    const series = await get('/dicom-web/series?includefield=0020000D', viewer);
    expect(series.statusCode, series.body).toBe(200);
    const studies = (series.json() as Record<string, { Value: string[] }>[]).map((s) => s['0020000D']?.Value[0]);
    expect(studies.length).toBeGreaterThan(0);
    expect(new Set(studies)).toEqual(new Set([a.study]));
    // Another study's retrieve and metadata: the uniform 404, as for any caller who may not see it.
    expect((await get(`/dicom-web/studies/${b.study}`, viewer)).statusCode).toBe(404);
    expect((await get(`/dicom-web/studies/${b.study}/series/1.2.3/metadata`, viewer)).statusCode).toBe(404);
    // The token's own patient's other study is not its study either.
    const other = await get(`/dicom-web/studies?00100020=${a.mrn}&StudyInstanceUID=${b.study}`, viewer);
    expect(other.statusCode).toBe(404);
  });

  test('an expired viewer token gets 401 and an audited denial', async () => {
    const urls = { issuer: `${f.baseUrl}/auth`, audience: `${f.baseUrl}/fhir` };
    const expired = await mintViewerToken(await f.app.authKeys.signingKey(), {
      ...urls,
      sub: (decodeJwt(viewer.authorization.slice(7)).sub as string) ?? '',
      patientId: a.patientId,
      studyInstanceUid: a.study,
      ttlS: 60,
      now: Math.floor(Date.now() / 1000) - 3600,
    });
    const res = await get(`/dicom-web/studies?StudyInstanceUID=${a.study}`, bearer(expired.token));
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('invalid_token');
    const event = await eventOf(f.app, res);
    expect(event.outcome).not.toBe('0');
  });
});

const uidsOf = (body: string): string[] =>
  (JSON.parse(body) as Record<string, { Value: string[] }>[]).map((x) => x['0020000D']?.Value[0] ?? '');

describe('viewer sessions: priors, renewal, session check', () => {
  let token: string;
  const renew = (t: string, idle = 0) =>
    f.app.inject({
      method: 'POST',
      url: '/api/v1/viewer/renew',
      headers: { ...bearer(t), 'content-type': 'application/json' },
      payload: JSON.stringify({ idle_s: idle }),
    });
  const session = (t: string, studies: string) => get(`/api/v1/viewer/session?studies=${studies}`, bearer(t));

  beforeAll(async () => {
    const res = await get(`/api/v1/dicom/viewer-url/${a.orderId}`, dr.auth);
    expect(res.statusCode, res.body).toBe(200);
    token = tokenOf((res.json() as ViewerLinkBody).viewer_url);
  });

  test("a link from an order reaches the patient's other studies, and no other patient's", async () => {
    expect(decodeJwt(token)).toMatchObject({ ehr_viewer_reach: 'patient', ehr_viewer_study: a.study });
    const mine = await get(`/dicom-web/studies?00100020=${a.mrn}`, bearer(token));
    expect(mine.statusCode).toBe(200);
    expect(uidsOf(mine.body).sort()).toEqual([a.study, a2].sort());
    expect((await get(`/dicom-web/studies/${a2}/series`, bearer(token))).statusCode).toBe(200);
    const theirs = await get(`/dicom-web/studies?StudyInstanceUID=${b.study}`, bearer(token));
    expect(theirs.statusCode === 200 ? uidsOf(theirs.body) : []).toEqual([]);
    // Another patient's study: QIDO-RS finds nothing in it, WADO-RS answers 404 (the normal patient filter).
    const series = await get(`/dicom-web/studies/${b.study}/series`, bearer(token));
    expect(series.statusCode).toBe(200);
    expect(series.json()).toEqual([]);
    expect((await get(`/dicom-web/studies/${b.study}/metadata`, bearer(token))).statusCode).toBe(404);
    expect((await get(`/api/v1/dicom/viewer-url/${a.orderId}?share=all`, dr.auth)).statusCode).toBe(400);
    expect((await get(`/api/v1/dicom/viewer-url/${a.orderId}?share=study&compare=prior`, dr.auth)).statusCode).toBe(
      400,
    );
    expect((await get(`/api/v1/dicom/viewer-url/${a.orderId}?compare=latest`, dr.auth)).statusCode).toBe(400);
  });

  test('the session check says which studies a link opens', async () => {
    const ok = await session(token, `${a.study},${a2}`);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ study: a.study, reach: 'patient', idle_timeout_s: f.config.viewerIdleTimeoutS });
    const other = await session(token, b.study);
    expect(other.statusCode).toBe(404);
    expect(other.json()).toMatchObject({ error: 'study_not_available' });
    const one = await get(`/api/v1/dicom/viewer-url/${a.orderId}?share=study`, dr.auth);
    const oneToken = tokenOf((one.json() as ViewerLinkBody).viewer_url);
    expect((await session(oneToken, a.study)).statusCode).toBe(200);
    expect((await session(oneToken, a2)).statusCode).toBe(404);
    expect((await session(dr.auth.authorization.slice(7), a.study)).statusCode).toBe(401);
  });

  test('a renewal gives the same session a fresh token, audited; each token renews once', async () => {
    const res = await renew(token);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const fresh = (res.json() as { token: string }).token;
    const before = decodeJwt(token);
    const after = decodeJwt(fresh);
    for (const claim of [
      'sub',
      'patient',
      'scope',
      'client_id',
      'ehr_viewer_study',
      'ehr_viewer_reach',
      'ehr_viewer_sid',
    ]) {
      expect(after[claim], claim).toEqual(before[claim]);
    }
    expect(after.jti).not.toBe(before.jti);
    expect((after.exp ?? 0) - (after.iat ?? 0)).toBe(f.config.viewerTokenTtlS);
    const event = await eventOf(f.app, res);
    expect(event.outcome).toBe('0');
    expect(JSON.stringify(event)).toContain(String(after.jti));
    const request = event.entity?.find((e) => e.description === 'token request')?.query ?? '';
    expect(Buffer.from(request, 'base64').toString()).toContain('viewer-renewal');
    expect(JSON.stringify(event)).not.toContain(fresh);

    const again = await renew(token);
    expect(again.statusCode).toBe(401);
    expect(again.json()).toMatchObject({ error: 'already_renewed' });
    expect((await eventOf(f.app, again)).outcome).not.toBe('0');
    // The fresh token reads and renews in turn.
    expect((await get(`/dicom-web/studies/${a.study}/series`, bearer(fresh))).statusCode).toBe(200);
    expect((await renew(fresh)).statusCode).toBe(200);
    token = fresh;
  });

  test('no renewal after the idle time, for an expired token, or for a token that is no viewer token', async () => {
    const idle = await renew(token, f.config.viewerIdleTimeoutS + 1);
    expect(idle.statusCode).toBe(401);
    expect(idle.json()).toMatchObject({ error: 'idle' });
    const expired = await mintViewerToken(await f.app.authKeys.signingKey(), {
      issuer: `${f.baseUrl}/auth`,
      audience: `${f.baseUrl}/fhir`,
      sub: String(decodeJwt(token).sub),
      patientId: a.patientId,
      studyInstanceUid: a.study,
      reach: 'patient',
      ttlS: 60,
      now: Math.floor(Date.now() / 1000) - 3600,
    });
    const late = await renew(expired.token);
    expect(late.statusCode).toBe(401);
    expect(late.headers['www-authenticate']).toMatch(/expired/);
    const user = await renew(dr.auth.authorization.slice(7));
    expect(user.statusCode).toBe(401);
    expect(user.json()).toMatchObject({ error: 'not_a_viewer_token' });
  });

  test('a revoked grant ends the session: no renewal, no read', async () => {
    const reader = await doctor(f.app, 'dr-http-revoked', [a.patientId]);
    const res = await get(`/api/v1/dicom/viewer-url/${a.orderId}`, reader.auth);
    const t = tokenOf((res.json() as ViewerLinkBody).viewer_url);
    expect((await get(`/dicom-web/studies/${a.study}/series`, bearer(t))).statusCode).toBe(200);
    const userId = await ensureUser(f.app, { username: reader.username, roles: ['doctor'] });
    const adminId = await ensureUser(f.app, { username: 'test-admin', roles: ['admin'] });
    expect(await revokeGrant(f.app.db, userId, a.patientId, adminId)).toBe(true);
    const refused = await renew(t);
    expect(refused.statusCode).toBe(401);
    expect(`${refused.headers['www-authenticate']}`).toMatch(/no longer has access/);
    expect((await get(`/dicom-web/studies/${a.study}/series`, bearer(t))).statusCode).toBe(401);
  });
});
