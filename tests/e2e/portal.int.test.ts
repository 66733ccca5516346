import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { adminToken, bearer, ensureUser } from '../helpers/auth.ts';
import { fhirPost } from '../helpers/stow.ts';
import {
  type ListeningFacade,
  launchChromium,
  recordConsole,
  startFacade,
  waitForDrawnImage,
} from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { type Auth, type Booked, bookPatientAndOrder, doctor, stow } from './helpers/ehr.ts';
import { docShot, signIn } from './helpers/web-app.ts';

/**
 * The patient portal (/app/ for a patient login) in Debian's chromium against the real facade, PostgreSQL and
 * Orthanc: the patient signs in through the built-in authorization server's login page, sees their own visit, order,
 * study and report, opens the study in OHIF (image drawn), downloads it as a zip, and reads who accessed their record.
 * The token the sign-in gave them reaches nobody else (the API refuses), and the portal offers no staff screen. Every
 * wait is bounded; screenshots go to docs/screenshots/ with EHR_UPDATE_SCREENSHOTS=1.
 */

const PASSWORD = 'portal-test-password';
const SLICES = 6;
let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
let work: string;
let ada: Booked & { studyUid: string };
let bob: Booked & { studyUid: string };
const pages: { page: Page; logs: string[] }[] = [];

async function withStudy(family: string): Promise<Booked & { studyUid: string }> {
  const booked = await bookPatientAndOrder(f.app, admin, family);
  const studyUid = newUid();
  const series = ctSeries({
    patientId: booked.mrn,
    patientName: `${family}^Viewer`,
    patientBirthDate: '19700101',
    studyInstanceUid: studyUid,
    accessionNumber: booked.accession,
    studyDescription: `CT Head ${family}`,
    slices: SLICES,
    size: 128,
  });
  await stow(f.app, admin, series.files);
  return { ...booked, studyUid };
}

/** The access token the sign-in left in the tab (fhirclient's sessionStorage state): what the portal itself uses. */
async function tokenOf(page: Page): Promise<string> {
  return page.evaluate(() => {
    const key = JSON.parse(sessionStorage.getItem('SMART_KEY') ?? '""') as string;
    const state = JSON.parse(sessionStorage.getItem(key) ?? '{}') as { tokenResponse?: { access_token?: string } };
    return state.tokenResponse?.access_token ?? '';
  });
}

const cspViolations = (page: Page) =>
  (pages.find((p) => p.page === page)?.logs ?? []).filter((l) => /Content Security Policy/i.test(l));

beforeAll(async () => {
  f = await startFacade();
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  ada = await withStudy('Portalada');
  bob = await withStudy('Portalbob');
  await fhirPost(f.app, admin, {
    resourceType: 'DiagnosticReport',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }] },
    subject: { reference: `Patient/${ada.patientId}` },
    basedOn: [{ reference: `ServiceRequest/${ada.orderId}` }],
    issued: new Date().toISOString(),
    resultsInterpreter: [{ display: 'Dr Portal Radiologist' }],
    conclusion: 'Portal test: no acute abnormality.',
  });
  await ensureUser(f.app, { username: 'portal-ada', roles: ['patient'], patientId: ada.patientId, password: PASSWORD });
  // A doctor opens Ada's record: the access history shows it.
  const doc = await doctor(f.app, 'portal-doctor', [ada.patientId]);
  const read = await f.app.inject({ method: 'GET', url: `/fhir/Patient/${ada.patientId}`, headers: doc.auth });
  expect(read.statusCode).toBe(200);
  work = mkdtempSync(join(tmpdir(), 'ehr-portal-'));
}, 180_000);

afterEach(async (ctx) => {
  for (const o of pages.splice(0)) {
    if (ctx.task.result?.state === 'fail') console.log(`${o.page.url()}\n${o.logs.join('\n')}`);
    await o.page.context().close();
  }
});

afterAll(async () => {
  await browser?.close();
  await f?.app.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function asPatient(): Promise<Page> {
  const page = await signIn(browser, f.baseUrl, 'portal-ada', PASSWORD);
  pages.push({ page, logs: recordConsole(page) });
  return page;
}

describe('the patient portal', () => {
  test('own record, the viewer, a download and the access history', async () => {
    const page = await asPatient();
    await page.getByRole('heading', { name: /Portalada, Viewer/ }).waitFor({ timeout: 15_000 });
    // Only the portal's menus: no staff screen is offered.
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link').allTextContents()).toEqual(['My record', 'Access history', 'Connected apps']);

    const images = page.getByRole('table', { name: 'My images' });
    await images.getByText('CT Head Portalada').waitFor({ timeout: 15_000 });
    expect(await images.locator('tbody tr').count()).toBe(1);
    await page.getByText('Portal test: no acute abnormality.').waitFor({ timeout: 15_000 });
    await page.getByRole('table', { name: 'My orders' }).getByText(ada.accession).waitFor({ timeout: 15_000 });
    expect(await page.getByText('Portalbob').count()).toBe(0);
    await docShot(page, 'portal-record');

    // View images: OHIF opens on the study with a viewer link, and draws it.
    const [viewer] = await Promise.all([
      page.context().waitForEvent('page', { timeout: 30_000 }),
      images.getByRole('button', { name: 'View images' }).click(),
    ]);
    await waitForDrawnImage(viewer, 90_000);
    await docShot(viewer, 'portal-viewer');
    await viewer.close();

    // Download (zip): the study's instances, through the facade.
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 60_000 }),
      images.getByRole('button', { name: 'Download (zip)' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`study-${ada.studyUid}.zip`);
    const zip = join(work, 'study.zip');
    await download.saveAs(zip);
    expect(statSync(zip).size).toBeGreaterThan(0);
    const entries = execFileSync('zipinfo', ['-1', zip], { encoding: 'utf8' }).trim().split('\n');
    expect(entries.filter((e) => !e.endsWith('/'))).toHaveLength(SLICES);

    // Access history: the doctor's read, the patient's own view and download.
    await nav.getByRole('link', { name: 'Access history' }).click();
    const history = page.getByRole('table', { name: 'Access history' });
    await history.waitFor({ timeout: 15_000 });
    await history.getByText('images downloaded (export)').first().waitFor({ timeout: 15_000 });
    await history
      .getByText(/^doctor \(/)
      .first()
      .waitFor({ timeout: 15_000 });
    expect(await history.getByText('You', { exact: true }).count()).toBeGreaterThan(0);
    await docShot(page, 'portal-access-history');
    expect(cspViolations(page)).toEqual([]);
  });

  test('the patient reaches nobody else: the API refuses, the portal offers nothing', async () => {
    const page = await asPatient();
    const token = await tokenOf(page);
    expect(token).not.toBe('');
    const get = (path: string) => fetch(`${f.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });

    // The token of the sign-in: the patient's own context, read-only patient scopes.
    const me = (await (await get('/api/v1/me')).json()) as { patient: string; roles: string[]; scopes: string[] };
    expect(me.patient).toBe(ada.patientId);
    expect(me.roles).toEqual(['patient']);
    expect(me.scopes).toContain('patient/*.rs');
    expect(me.scopes.some((s) => s.startsWith('user/'))).toBe(false);

    expect((await get(`/fhir/Patient/${bob.patientId}`)).status).toBe(404);
    expect((await get(`/fhir/ServiceRequest/${bob.orderId}`)).status).toBe(404);
    expect((await get(`/api/v1/studies/${bob.studyUid}/archive`)).status).toBe(404);
    expect((await get(`/api/v1/dicom/viewer-url/${bob.orderId}`)).status).toBe(404);
    expect((await get(`/dicom-web/studies/${bob.studyUid}/metadata`)).status).toBe(404);
    const patients = (await (await get('/fhir/Patient')).json()) as { entry?: { resource: { id: string } }[] };
    expect((patients.entry ?? []).map((e) => e.resource.id)).toEqual([ada.patientId]);
    const events = (await (await get(`/fhir/AuditEvent?patient=Patient/${bob.patientId}`)).json()) as {
      entry?: unknown[];
    };
    expect(events.entry ?? []).toEqual([]);
    expect((await get('/api/v1/admin/users')).status).toBe(403);
    const write = await fetch(`${f.baseUrl}/fhir/Patient/${ada.patientId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(write.status).toBe(403);

    // Staff addresses show the portal, never another patient's chart.
    await page.goto(`${f.baseUrl}/app/patients/${bob.patientId}`);
    await page.getByRole('heading', { name: /Portalada, Viewer/ }).waitFor({ timeout: 15_000 });
    expect(await page.getByText('Portalbob').count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Patients' }).count()).toBe(0);
    expect(cspViolations(page)).toEqual([]);
  });
});
