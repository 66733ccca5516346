import type { Browser, Page } from 'playwright-core';
import { sql } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { mintViewerToken } from '../../src/auth/viewer-token.ts';
import { adminToken, bearer } from '../helpers/auth.ts';
import { pydicomFile, rewrite } from '../helpers/dicom.ts';
import {
  type DicomWebCall,
  imageDrawn,
  launchChromium,
  type ListeningFacade,
  recordConsole,
  recordDicomWeb,
  screenshot,
  startFacade,
  waitForDrawnImage,
} from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { type Auth, addOrder, type Booked, bookPatientAndOrder, type Doctor, doctor, stow } from './helpers/ehr.ts';

/**
 * Real-browser tests of the viewer: OHIF (served by the facade) in Debian's chromium, against the real facade and
 * the throwaway PostgreSQL + Orthanc. Screenshots go to test-artifacts/e2e/. Every wait is bounded.
 */

const VIEWPORT = { width: 1280, height: 800 };
const RENDER_TIMEOUT_MS = 60_000;

let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
let dr: Doctor;
/** Patients A and B are granted to the doctor, C is not. */
let a: Booked;
let b: Booked;
let c: Booked;
let studyA: string;
const studies: Record<'rle' | 'j2k', string> = { rle: '', j2k: '' };
const orders: Record<'rle' | 'j2k', string> = { rle: '', j2k: '' };

/** A CT phantom series for a booked order, uploaded through STOW-RS by `auth`. */
async function ctFor(o: Booked, auth: Auth, slices: number, size: number): Promise<string> {
  const series = ctSeries({
    patientId: o.mrn,
    patientName: `${o.family}^Viewer`,
    studyInstanceUid: newUid(),
    accessionNumber: o.accession,
    slices,
    size,
  });
  await stow(f.app, auth, series.files);
  return series.studyInstanceUid;
}

/** A real compressed file from pydicom's test data, re-keyed onto a new order of patient A, uploaded by STOW-RS. */
async function pydicomStudy(file: string, which: 'rle' | 'j2k'): Promise<void> {
  const order = await addOrder(f.app, admin, a.patientId);
  const study = newUid();
  const bytes = rewrite(pydicomFile(file), {
    StudyInstanceUID: study,
    SeriesInstanceUID: newUid(),
    SOPInstanceUID: newUid(),
    PatientID: a.mrn,
    AccessionNumber: order.accession,
  });
  await stow(f.app, admin, [bytes]);
  studies[which] = study;
  orders[which] = order.orderId;
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
}
const pages: Opened[] = [];

async function open(url: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: VIEWPORT });
  const opened = { page, calls: recordDicomWeb(page), logs: recordConsole(page) };
  pages.push(opened);
  await page.goto(url, { timeout: 30_000 });
  return opened;
}

beforeAll(async () => {
  f = await startFacade();
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  a = await bookPatientAndOrder(f.app, admin, 'Ahlberg');
  b = await bookPatientAndOrder(f.app, admin, 'Brandt');
  c = await bookPatientAndOrder(f.app, admin, 'Castillo');
  dr = await doctor(f.app, 'dr-viewer', [a.patientId, b.patientId]);
  // The order's doctor uploads the real multi-slice CT series; the other studies come from the admin.
  studyA = await ctFor(a, dr.auth, 24, 256);
  await ctFor(b, admin, 3, 64);
  await ctFor(c, admin, 3, 64);
  await pydicomStudy('SC_rgb_rle_2frame.dcm', 'rle');
  await pydicomStudy('JPEG2000.dcm', 'j2k');
}, 180_000);

afterEach(async (ctx) => {
  // On failure, say why: the page's errors and its DICOMweb log.
  for (const [i, o] of pages.splice(0).entries()) {
    if (ctx.task.result?.state === 'fail') {
      await screenshot(o.page, `failed-${ctx.task.name.slice(0, 2).replace(/\W/g, '')}-${i}`).catch(() => undefined);
      console.log(`${o.page.url()}\n${o.logs.join('\n')}\n${o.calls.map((x) => `${x.status} ${x.url}`).join('\n')}`);
    }
    await o.page.close();
  }
});

afterAll(async () => {
  await browser?.close();
  await f?.app.close();
});

describe('OHIF through the facade, in a real browser', () => {
  test("1. the order's doctor opens viewer-url: the CT is drawn, the token went in headers and left the URL", async () => {
    const url = await viewerUrl(a.orderId, dr.auth);
    const token = new URLSearchParams(new URL(url).hash.slice(1)).get('token') ?? '';
    const o = await open(url);
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    await screenshot(o.page, '1-viewer-ct');

    expect(o.page.url()).not.toContain(token.slice(0, 20));
    expect(o.page.url()).not.toContain('token');
    const frames = o.calls.filter((x) => /\/frames\/\d+$/.test(new URL(x.url).pathname));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((x) => x.status === 200)).toBe(true);
    expect(o.calls.every((x) => x.url.includes(`/dicom-web/studies`))).toBe(true);
    expect(o.calls.every((x) => x.authorization === `Bearer ${token}`)).toBe(true);
    expect(o.calls.some((x) => x.url.includes(studyA))).toBe(true);
  });

  test('2. an expired token, or a token for another patient: nothing drawn, DICOMweb answers 401/404', async () => {
    // Expired: a viewer token for A's study that ran out an hour ago.
    const key = await f.app.authKeys.signingKey();
    const expired = await mintViewerToken(key, {
      issuer: `${f.baseUrl}/auth`,
      audience: `${f.baseUrl}/fhir`,
      sub: String(await f.app.db.oneFirst(sql.unsafe`SELECT id::text FROM users WHERE username = ${dr.username}`)),
      patientId: a.patientId,
      studyInstanceUid: studyA,
      ttlS: 60,
      now: Math.floor(Date.now() / 1000) - 3600,
    });
    const late = await open(`${f.baseUrl}/viewer?StudyInstanceUIDs=${studyA}#token=${expired.token}`);
    // Another patient: B's valid one-study viewer token, with A's study in the URL.
    const bUrl = new URL(await viewerUrl(b.orderId, dr.auth, '?share=study'));
    bUrl.searchParams.set('StudyInstanceUIDs', studyA);
    const other = await open(bUrl.toString());

    for (const [o, name] of [
      [late, '2-expired-token'],
      [other, '2-other-patient-token'],
    ] as const) {
      await o.page.waitForURL(/\/notfoundstudy/, { timeout: RENDER_TIMEOUT_MS });
      await screenshot(o.page, name);
      expect(await imageDrawn(o.page)).toBe(false);
      expect(o.calls.length).toBeGreaterThan(0);
      expect(o.calls.every((x) => x.status === 401 || x.status === 404)).toBe(true);
    }
    expect(late.calls.some((x) => x.status === 401)).toBe(true);
    expect(other.calls.some((x) => x.status === 404)).toBe(true);
  });

  test('3. a doctor granted two of three patients logs in: the study list shows exactly their studies', async () => {
    const o = await open(`${f.baseUrl}/`);
    await o.page.waitForURL(/\/auth\/authorize/, { timeout: 30_000 });
    await o.page.fill('input[name=username]', dr.username);
    await o.page.fill('input[name=password]', dr.password);
    await Promise.all([o.page.waitForURL(`${f.baseUrl}/`, { timeout: 30_000 }), o.page.click('button[type=submit]')]);
    // Bounded wait for the list (rows of A and B, sorted by date).
    await o.page.getByText('Brandt, Viewer').first().waitFor({ timeout: 30_000 });
    await screenshot(o.page, '3-study-list');

    // Exactly A's three studies (the CT, the RLE and the J2K ones) and B's CT; nothing of C.
    const rows = o.page.locator('table tbody tr').filter({ hasText: /\d{2}-[A-Z][a-z]{2}-\d{4}/ });
    const texts = await rows.allInnerTexts();
    expect(texts).toHaveLength(4);
    const matching = (re: RegExp) => texts.filter((t) => re.test(t)).length;
    expect(matching(/Ahlberg, Viewer/)).toBe(1);
    expect(matching(/Brandt, Viewer/)).toBe(1);
    expect(matching(/Castillo/)).toBe(0);
    // Descriptions, modalities and dates come from the includefield of the QIDO query.
    expect(matching(/15-Jan-2026[\s\S]*\bCT\b[\s\S]*CT HEAD PHANTOM/)).toBe(2);
    expect(matching(/\bNM\b[\s\S]*Whole Body Bone/)).toBe(1);
    expect(matching(/\bOT\b/)).toBe(1);
    // With the same session, open B's study from the list in the viewer.
    await o.page.getByText('Brandt, Viewer').first().click();
    await o.page.getByRole('button', { name: 'Basic Viewer' }).click({ timeout: 15_000 });
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    expect(new URL(o.page.url()).pathname).toBe('/viewer');
    await screenshot(o.page, '3-viewer-signed-in');

    const qido = o.calls.filter((x) => new URL(x.url).pathname === '/dicom-web/studies');
    expect(qido.length).toBeGreaterThan(0);
    expect(qido.every((x) => x.status === 200 && x.authorization?.startsWith('Bearer '))).toBe(true);
    expect(qido.some((x) => x.url.includes('includefield'))).toBe(true);
    const frames = o.calls.filter((x) => /\/frames\/\d+$/.test(new URL(x.url).pathname));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((x) => x.status === 200 && x.authorization?.startsWith('Bearer '))).toBe(true);
  });

  test.each([
    ['rle', 'multi-frame RLE (SC_rgb_rle_2frame.dcm)'],
    ['j2k', 'JPEG 2000 (JPEG2000.dcm)'],
  ] as const)('4. a %s study renders: %s', async (which: 'rle' | 'j2k', _what: string) => {
    const o = await open(await viewerUrl(orders[which], dr.auth));
    await waitForDrawnImage(o.page, RENDER_TIMEOUT_MS);
    await screenshot(o.page, `4-viewer-${which}`);
    const frames = o.calls.filter((x) => x.url.includes(studies[which]) && /\/frames\//.test(x.url));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.every((x) => x.status === 200)).toBe(true);
  });
});
