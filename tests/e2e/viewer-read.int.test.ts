import type { Browser, Page } from 'playwright-core';
import { sql } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { revokeGrant } from '../../src/auth/user-admin.ts';
import { mintViewerToken } from '../../src/auth/viewer-token.ts';
import { adminToken, bearer, ensureUser } from '../helpers/auth.ts';
import {
  type DicomWebCall,
  launchChromium,
  type ListeningFacade,
  recordConsole,
  recordDicomWeb,
  startFacade,
  waitForDrawnImage,
} from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { type Auth, addOrder, type Booked, bookPatientAndOrder, type Doctor, doctor, stow } from './helpers/ehr.ts';
import { docShot } from './helpers/web-app.ts';

/**
 * A radiologist's read in OHIF through the facade, in Debian's chromium: a read that outlasts the viewer token's
 * lifetime (configured short here), a revocation that ends a read, a prior study next to the current one, MPR of a
 * 200-slice CT, and the viewer's messages for an expired link and a study the user may not see. Every wait is
 * bounded; screenshots go to test-artifacts/e2e/web-app/ (docs/screenshots/ with EHR_UPDATE_SCREENSHOTS=1).
 */

const VIEWPORT = { width: 1280, height: 800 };
const RENDER_TIMEOUT_MS = 90_000;
/** The viewer token's lifetime in this test: the configuration's minimum. */
const TTL_S = 30;

let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
/** Patient A: a current CT, a prior CT and a 200-slice CT; granted to the doctors. Patient B: granted to nobody. */
let a: Booked;
let b: Booked;
let current: string;
let prior: string;
let large: string;
let largeOrder: string;
let studyB: string;
let dr: Doctor;

async function ctFor(
  o: { mrn: string; family: string },
  accession: string,
  slices: number,
  size: number,
  what: string,
  studyDate?: string,
) {
  const series = ctSeries({
    ...(studyDate ? { studyDate } : {}),
    patientId: o.mrn,
    patientName: `${o.family}^Viewer`,
    studyInstanceUid: newUid(),
    accessionNumber: accession,
    studyDescription: what,
    slices,
    size,
  });
  await stow(f.app, admin, series.files);
  return series.studyInstanceUid;
}

async function viewerUrl(orderId: string, auth: Auth, query = ''): Promise<string> {
  const res = await f.app.inject({ method: 'GET', url: `/api/v1/dicom/viewer-url/${orderId}${query}`, headers: auth });
  if (res.statusCode !== 200) throw new Error(`viewer-url: ${res.statusCode} ${res.body}`);
  return (res.json() as { viewer_url: string }).viewer_url;
}

interface Opened {
  page: Page;
  calls: DicomWebCall[];
  logs: string[];
  /** Every URL the page's top frame was at. */
  visited: string[];
}
const pages: Opened[] = [];

async function open(url: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  const visited: string[] = [];
  page.on('framenavigated', (fr) => {
    if (fr === page.mainFrame()) visited.push(fr.url());
  });
  const opened = { page, calls: recordDicomWeb(page), logs: recordConsole(page), visited };
  pages.push(opened);
  await page.goto(url, { timeout: 30_000 });
  return opened;
}

/** Counts the viewports that show a drawn image. */
const DRAWN_VIEWPORTS = `(() => {
  let n = 0;
  for (const c of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
    if (!d) continue;
    let lit = 0;
    for (let i = 0; i < d.length; i += 16) if (d[i] + d[i + 1] + d[i + 2] > 48) lit++;
    if (lit > 200) n++;
  }
  return n;
})()`;

/** Scrolls the first viewport by `steps` mouse-wheel notches (each one slice), `delta` > 0 going down. */
async function scroll(page: Page, steps: number, delta = 100): Promise<void> {
  const box = await page.locator('canvas.cornerstone-canvas').first().boundingBox();
  if (!box) throw new Error('no viewport');
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < steps; i++) {
    await page.mouse.wheel(0, delta);
    await page.waitForTimeout(20);
  }
}

const message = (page: Page) => page.getByTestId('ehr-viewer-message');

beforeAll(async () => {
  f = await startFacade({ viewerTokenTtlS: TTL_S });
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  a = await bookPatientAndOrder(f.app, admin, 'Reader');
  b = await bookPatientAndOrder(f.app, admin, 'Stranger');
  const priorOrder = await addOrder(f.app, admin, a.patientId);
  const big = await addOrder(f.app, admin, a.patientId);
  largeOrder = big.orderId;
  current = await ctFor(a, a.accession, 40, 128, 'CT HEAD CURRENT');
  prior = await ctFor(a, priorOrder.accession, 20, 128, 'CT HEAD PRIOR', '20250601');
  large = await ctFor(a, big.accession, 200, 128, 'CT HEAD 200 SLICES', '20240101');
  studyB = await ctFor(b, b.accession, 2, 64, 'CT HEAD OTHER');
  dr = await doctor(f.app, 'dr-read', [a.patientId]);
}, 300_000);

afterEach(async (ctx) => {
  for (const o of pages.splice(0)) {
    if (ctx.task.result?.state === 'fail') {
      await docShot(o.page, `failed-read-${ctx.task.name.slice(0, 12).replace(/\W/g, '')}`).catch(() => undefined);
      console.log(`${o.page.url()}\n${o.logs.join('\n')}\n${o.calls.map((x) => `${x.status} ${x.url}`).join('\n')}`);
    }
    await o.page.close();
  }
});

afterAll(async () => {
  await browser?.close();
  await f?.app.close();
});

describe('a read in OHIF through the facade', () => {
  test('a read outlasts the viewer token: renewed while the user reads, a reload goes on, no failed request', async () => {
    const o = await open(await viewerUrl(a.orderId, dr.auth));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    const renewals: string[] = [];
    o.page.on('response', (res) => {
      if (res.url().endsWith('/api/v1/viewer/renew')) renewals.push(String(res.status()));
    });
    // Read for well over two token lifetimes, scrolling now and then (bounded by the elapsed time).
    const start = Date.now();
    while (Date.now() - start < 2.5 * TTL_S * 1000) {
      await scroll(o.page, 5, (Math.floor((Date.now() - start) / 10_000) % 2 === 0 ? 1 : -1) * 100);
      await o.page.waitForTimeout(2000);
    }
    // A reload after the first token has long expired goes on with the renewed one: no sign-in, the image again.
    await o.page.reload({ timeout: 30_000 });
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    await scroll(o.page, 10);
    await docShot(o.page, 'viewer-long-read');

    expect(renewals.length).toBeGreaterThanOrEqual(2);
    expect(renewals.every((s) => s === '200')).toBe(true);
    expect(o.visited.some((u) => u.includes('/auth/authorize'))).toBe(false);
    expect(o.calls.length).toBeGreaterThan(0);
    expect(o.calls.filter((x) => x.status >= 400)).toEqual([]);
    const tokens = new Set(o.calls.map((x) => x.authorization));
    expect(tokens.size).toBeGreaterThanOrEqual(2);
    await expect(message(o.page).count()).resolves.toBe(0);
  }, 300_000);

  test('a revoked grant ends a read with a message that says so', async () => {
    const reader = await doctor(f.app, 'dr-revoked', [a.patientId]);
    const o = await open(await viewerUrl(a.orderId, reader.auth));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    const userId = await ensureUser(f.app, { username: reader.username, roles: ['doctor'] });
    const adminId = await ensureUser(f.app, { username: 'test-admin', roles: ['admin'] });
    expect(await revokeGrant(f.app.db, userId, a.patientId, adminId)).toBe(true);
    // The next renewal (or request) is refused: the viewer is covered by the message (bounded by the token lifetime).
    await message(o.page).waitFor({ timeout: (TTL_S + 15) * 1000 });
    expect(await message(o.page).getAttribute('data-code')).toBe('revoked');
    expect(await message(o.page).textContent()).toContain("Your access to this patient's images was withdrawn");
    await docShot(o.page, 'viewer-revoked');
  }, 180_000);

  test("a prior study of the patient is listed and opened next to the order's study from the viewer link", async () => {
    const o = await open(await viewerUrl(a.orderId, dr.auth));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    // OHIF's study browser asks for the patient's other studies: the link's token lists the prior (and the large CT).
    const search = () =>
      o.calls.filter((x) => /\/dicom-web\/studies\?/.test(x.url) && !x.url.includes('StudyInstanceUID='));
    await expect.poll(() => search().length, { timeout: 30_000 }).toBeGreaterThan(0);
    const listed = await f.app.inject({
      url: `/dicom-web/studies?PatientID=${a.mrn}`,
      headers: { authorization: search()[0]?.authorization ?? '' },
    });
    const uids = (listed.json() as Record<string, { Value: string[] }>[]).map((s) => s['0020000D']?.Value[0]);
    expect(uids.sort()).toEqual([current, prior, large].sort());
    // The order's link asked with compare=prior: the study next to the patient's latest earlier one, OHIF's
    // "compare two studies" hanging protocol (@ohif/hpCompare).
    const compare = await viewerUrl(a.orderId, dr.auth, '?compare=prior');
    expect(new URL(compare).searchParams.get('StudyInstanceUIDs')).toBe(`${current},${prior}`);
    await o.page.goto(compare, { timeout: 30_000 });
    await o.page.waitForFunction(`${DRAWN_VIEWPORTS} >= 2`, undefined, { timeout: RENDER_TIMEOUT_MS, polling: 500 });
    await docShot(o.page, 'viewer-compare-prior');
    expect(o.calls.some((x) => x.url.includes(`/studies/${prior}/`) && x.status === 200)).toBe(true);
    expect(o.calls.filter((x) => x.status >= 400)).toEqual([]);
    expect(o.visited.some((u) => u.includes('/auth/authorize'))).toBe(false);
  }, 180_000);

  test('a link shared for one study opens that study only', async () => {
    const o = await open(await viewerUrl(a.orderId, dr.auth, '?share=study'));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    await o.page.goto(`${f.baseUrl}/viewer?StudyInstanceUIDs=${prior}`, { timeout: 30_000 });
    await message(o.page).waitFor({ timeout: 30_000 });
    expect(await message(o.page).getAttribute('data-code')).toBe('notAvailable');
    expect(o.calls.some((x) => x.url.includes(prior) && x.status === 200)).toBe(false);
  }, 180_000);

  test('MPR of a 200-slice CT, scrolled end to end, without a failed request', async () => {
    const o = await open(await viewerUrl(largeOrder, dr.auth));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    await o.page.goto(`${f.baseUrl}/viewer?StudyInstanceUIDs=${large}&hangingprotocolId=mpr`, { timeout: 30_000 });
    await o.page.waitForFunction(`${DRAWN_VIEWPORTS} >= 3`, undefined, { timeout: RENDER_TIMEOUT_MS, polling: 500 });
    // The volume needs every slice: wait (bounded) until all 200 frames came.
    const frames = () =>
      new Set(o.calls.filter((x) => /\/frames\/\d+$/.test(x.url) && x.url.includes(large)).map((x) => x.url));
    await expect.poll(() => frames().size, { timeout: RENDER_TIMEOUT_MS, interval: 1000 }).toBeGreaterThanOrEqual(200);
    // The axial viewport's overlay says which of the 200 slices it shows: the last one, then the first one.
    await scroll(o.page, 220, 100);
    await o.page.getByText('(200/200)').first().waitFor({ timeout: 30_000 });
    await scroll(o.page, 220, -100);
    await o.page.getByText('(1/200)').first().waitFor({ timeout: 30_000 });
    await scroll(o.page, 100, 100);
    await docShot(o.page, 'viewer-mpr-200');
    expect(o.calls.filter((x) => x.status >= 400)).toEqual([]);
    expect(await o.page.evaluate(DRAWN_VIEWPORTS)).toBeGreaterThanOrEqual(3);
  }, 300_000);

  test('an expired link and a study the user may not see: the viewer says what happened and what to do', async () => {
    const sub = String(await f.app.db.oneFirst(sql.unsafe`SELECT id::text FROM users WHERE username = ${dr.username}`));
    const expired = await mintViewerToken(await f.app.authKeys.signingKey(), {
      issuer: `${f.baseUrl}/auth`,
      audience: `${f.baseUrl}/fhir`,
      sub,
      patientId: a.patientId,
      studyInstanceUid: current,
      reach: 'patient',
      ttlS: 60,
      now: Math.floor(Date.now() / 1000) - 3600,
    });
    const late = await open(`${f.baseUrl}/viewer?StudyInstanceUIDs=${current}#token=${expired.token}`);
    await message(late.page).waitFor({ timeout: 30_000 });
    expect(await message(late.page).getAttribute('data-code')).toBe('expired');
    expect(await message(late.page).textContent()).toContain('This link expired. Open the study again from the order.');
    await docShot(late.page, 'viewer-expired-link');

    // A valid link of patient A, pointed at patient B's study.
    const link = new URL(await viewerUrl(a.orderId, dr.auth));
    link.searchParams.set('StudyInstanceUIDs', studyB);
    const other = await open(link.toString());
    await message(other.page).waitFor({ timeout: 30_000 });
    expect(await message(other.page).getAttribute('data-code')).toBe('notAvailable');
    expect(await message(other.page).textContent()).toContain('This study is not available to you');
    await docShot(other.page, 'viewer-forbidden-study');
    expect(other.calls.some((x) => x.url.includes(studyB) && x.status === 200 && /frames|metadata/.test(x.url))).toBe(
      false,
    );
  }, 180_000);
});

describe('a signed-in read in OHIF', () => {
  /** A second facade on the same stack whose access tokens live 30 s: OHIF must renew with its refresh token. */
  let g: ListeningFacade;
  beforeAll(async () => {
    g = await startFacade({ authAccessTokenTtlS: TTL_S });
  }, 60_000);
  afterAll(async () => {
    await g?.app.close();
  });

  test('outlasts the access token: refreshed with rotation, no sign-in again, no failed request', async () => {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const visited: string[] = [];
    page.on('framenavigated', (fr) => {
      if (fr === page.mainFrame()) visited.push(fr.url());
    });
    const calls = recordDicomWeb(page);
    const logs = recordConsole(page);
    const refreshes: number[] = [];
    page.on('response', (res) => {
      const body = res.request().postData() ?? '';
      if (res.url().endsWith('/auth/token') && body.includes('grant_type=refresh_token')) refreshes.push(res.status());
    });
    try {
      await page.goto(`${g.baseUrl}/viewer?StudyInstanceUIDs=${current}`, { timeout: 30_000 });
      await page.waitForSelector('input[name=username]', { timeout: 30_000 });
      await page.fill('input[name=username]', dr.username);
      await page.fill('input[name=password]', dr.password);
      await Promise.all([page.waitForURL(/\/viewer/, { timeout: 30_000 }), page.click('button[type=submit]')]);
      await waitForDrawnImage(page, RENDER_TIMEOUT_MS);
      const signedIn = visited.length;
      const start = Date.now();
      while (Date.now() - start < 2.5 * TTL_S * 1000) {
        await scroll(page, 5, (Math.floor((Date.now() - start) / 10_000) % 2 === 0 ? 1 : -1) * 100);
        await page.waitForTimeout(2000);
      }
      // Slices drawn after the first access token expired, with the refreshed one.
      await scroll(page, 20, 100);
      await waitForDrawnImage(page, RENDER_TIMEOUT_MS);
      await docShot(page, 'viewer-signed-in-long-read');

      expect(refreshes.length).toBeGreaterThanOrEqual(2);
      expect(refreshes.every((s) => s === 200)).toBe(true);
      expect(visited.slice(signedIn).some((u) => u.includes('/auth/authorize'))).toBe(false);
      expect(calls.filter((x) => x.status >= 400)).toEqual([]);
      expect(new Set(calls.map((x) => x.authorization)).size).toBeGreaterThanOrEqual(2);
    } catch (err) {
      console.log(`${page.url()}\n${logs.join('\n')}\n${calls.map((x) => `${x.status} ${x.url}`).join('\n')}`);
      await docShot(page, 'failed-read-signed-in').catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  }, 300_000);
});

describe('the archive unavailable', () => {
  /** A facade on the same database whose Orthanc does not answer (nothing listens on its port). */
  let dead: ListeningFacade;
  beforeAll(async () => {
    const { freePort } = await import('../../src/stack/process.ts');
    dead = await startFacade({ orthancUrl: `http://127.0.0.1:${await freePort()}` });
  }, 60_000);
  afterAll(async () => {
    await dead?.app.close();
  });

  test('the viewer says the archive is not answering and what to do', async () => {
    const reader = await doctor(dead.app, 'dr-archive', [a.patientId]);
    const res = await dead.app.inject({ url: `/api/v1/dicom/viewer-url/${a.orderId}`, headers: reader.auth });
    expect(res.statusCode, res.body).toBe(200);
    const o = await open((res.json() as { viewer_url: string }).viewer_url);
    const shown = o.page.locator('[data-testid="ehr-viewer-warning"], [data-testid="ehr-viewer-message"]').first();
    await shown.waitFor({ timeout: 60_000 });
    expect(await shown.getAttribute('data-code')).toBe('archiveDown');
    expect(await shown.textContent()).toContain('The image archive is not answering right now');
    await docShot(o.page, 'viewer-archive-unavailable');
    expect(o.calls.some((x) => x.status >= 502 && x.status <= 504)).toBe(true);
  }, 180_000);
});

describe('an idle viewer', () => {
  /** A facade on the same stack whose idle time is the configuration's minimum, 60 s. */
  let quiet: ListeningFacade;
  beforeAll(async () => {
    quiet = await startFacade({ viewerIdleTimeoutS: 60 });
  }, 60_000);
  afterAll(async () => {
    await quiet?.app.close();
  });

  test('closes after the idle time and says so', async () => {
    const reader = await doctor(quiet.app, 'dr-idle', [a.patientId]);
    const res = await quiet.app.inject({ url: `/api/v1/dicom/viewer-url/${a.orderId}`, headers: reader.auth });
    expect(res.statusCode, res.body).toBe(200);
    const o = await open((res.json() as { viewer_url: string }).viewer_url);
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    // Nobody touches the viewer: bounded by the idle time and the viewer's 5 s check.
    await message(o.page).waitFor({ timeout: 90_000 });
    expect(await message(o.page).getAttribute('data-code')).toBe('idle');
    expect(await message(o.page).textContent()).toContain(
      'The viewer closed after 1 minute without activity. Open the study again from the order.',
    );
    await docShot(o.page, 'viewer-idle');
  }, 180_000);
});
