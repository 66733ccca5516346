import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { DiagnosticReport, Encounter, Practitioner, ServiceRequest } from '@medplum/fhirtypes';
import { adminToken, bearer, ensureUser, grantPatient, tokenFor } from '../helpers/auth.ts';
import { pydicomFile, rewrite, withElements } from '../helpers/dicom.ts';
import { fhirPost } from '../helpers/stow.ts';
import {
  type ListeningFacade,
  launchChromium,
  recordConsole,
  startFacade,
  waitForDrawnImage,
} from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { addOrder, type Auth, bookPatientAndOrder, stow } from './helpers/ehr.ts';
import { docShot, signIn, whileFirstStowHeld, zippedMedia } from './helpers/web-app.ts';

/**
 * The staff web app (/app/) in Debian's chromium against the real facade, PostgreSQL and Orthanc: each role signs in
 * through the built-in authorization server and walks its part of the daily path. Screenshots of each screen go to
 * docs/screenshots/. Every wait is bounded.
 */

const PASSWORD = 'web-app-test-password';
let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
let work: string;
const pages: { page: Page; logs: string[] }[] = [];

async function as(username: string, shot?: string): Promise<Page> {
  const page = await signIn(browser, f.baseUrl, username, PASSWORD, shot);
  pages.push({ page, logs: recordConsole(page) });
  return page;
}

/** Console messages of a page that report a Content Security Policy violation (none expected). */
const cspViolations = (page: Page) =>
  (pages.find((p) => p.page === page)?.logs ?? []).filter((l) => /Content Security Policy/i.test(l));

beforeAll(async () => {
  // hold: a study that matches nothing is kept and queued for reconciliation (docs/ingest.md, "C-STORE ingest").
  f = await startFacade({ stowUnmatched: 'hold' });
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  for (const [username, roles, department] of [
    ['web-admin', ['admin'], undefined],
    ['web-doctor', ['doctor'], undefined],
    ['web-nurse', ['nurse'], undefined],
    ['web-radiologist', ['radiologist'], 'Organization/radiology'],
    ['web-auditor', ['auditor'], undefined],
  ] as const) {
    await ensureUser(f.app, {
      username,
      roles: [...roles],
      password: PASSWORD,
      practitionerId: `pr-${username}`,
      ...(department ? { department } : {}),
    });
  }
  work = mkdtempSync(join(tmpdir(), 'ehr-web-'));
}, 120_000);

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

describe('the staff web app', () => {
  test('serves /app/ with a strict CSP and the SPA fallback, and the API stays the API', async () => {
    const page = await fetch(`${f.baseUrl}/app/patients/x`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(await page.text()).toContain('<div id="root">');
    expect((await fetch(`${f.baseUrl}/app/assets/missing.js`)).status).toBe(404);
    // The bundle: content-hashed, cached for good, and sent pre-compressed to a browser that accepts Brotli.
    const script = /<script[^>]+src="([^"]+)"/.exec(await (await fetch(`${f.baseUrl}/app/`)).text())?.[1] ?? '';
    expect(script).toMatch(/^\/app\/assets\/index-[\w-]+\.js$/);
    const js = await fetch(`${f.baseUrl}${script}`, { headers: { 'accept-encoding': 'br' } });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-encoding')).toBe('br');
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${f.baseUrl}/api/v1/me`)).status).toBe(401);
  });

  test('admin: patient, visit and order; upload a folder with one tag corrected; view; reconcile', async () => {
    const page = await as('web-admin', 'sign-in');
    await page.waitForURL(/\/app\/patients$/, { timeout: 15_000 });

    // Create a patient, a visit and an order.
    const newPatient = page.getByRole('region', { name: 'New patient' });
    await newPatient.getByLabel('Family name').fill('Webster');
    await newPatient.getByLabel('Given names').fill('Ada');
    await newPatient.getByLabel('Birth date').fill('1980-02-03');
    await newPatient.getByRole('button', { name: 'Create patient' }).click();
    await page.getByRole('heading', { name: /Webster, Ada/ }).waitFor({ timeout: 15_000 });
    const patientId = page.url().split('/').at(-1) ?? '';
    const mrn = (await page.locator('h1 .mono').textContent())?.replace('MRN ', '').trim() ?? '';
    expect(mrn).not.toBe('');

    await page.getByLabel('Reason').fill('headache');
    await page.getByRole('button', { name: 'Add visit' }).click();
    await page.getByRole('table', { name: 'Visits' }).getByText('headache').waitFor({ timeout: 15_000 });
    const orderForm = page.getByRole('form', { name: 'New order' });
    await orderForm.getByLabel('Visit').selectOption({ index: 1 });
    await orderForm.getByRole('button', { name: 'Create order' }).click();
    const orders = page.getByRole('table', { name: 'Orders' });
    await orders.waitFor({ timeout: 15_000 });
    const accession = (await orders.locator('tbody tr td.mono a').first().textContent())?.trim() ?? '';
    expect(accession).not.toBe('');
    await docShot(page, 'patient-chart');

    // A folder: a 12-slice CT series and a real CT file of pydicom's test data, all with a wrong accession number,
    // plus a text file that is not DICOM.
    const folder = join(work, 'exam');
    mkdirSync(folder, { recursive: true });
    const study = newUid();
    const series = ctSeries({
      patientId: mrn,
      patientName: 'Webster^Ada',
      patientBirthDate: '19800203',
      studyInstanceUid: study,
      accessionNumber: 'WRONG-ACC',
      slices: 12,
      size: 128,
    });
    for (const [i, b] of series.files.entries()) writeFileSync(join(folder, `ct-${i}.dcm`), b);
    writeFileSync(
      join(folder, 'ct-small.dcm'),
      rewrite(pydicomFile('CT_small.dcm'), {
        StudyInstanceUID: study,
        SeriesInstanceUID: newUid(),
        SOPInstanceUID: newUid(),
        PatientID: mrn,
        AccessionNumber: 'WRONG-ACC',
      }),
    );
    writeFileSync(join(folder, 'README.txt'), 'not DICOM');

    await orders.getByRole('link', { name: 'Upload images' }).first().click();
    await page.getByText(`MRN ${mrn}`).waitFor({ timeout: 15_000 });
    await page.getByLabel('Choose a folder').setInputFiles(folder);
    const card = page.getByRole('region', { name: `Study ${study}` });
    await card.waitFor({ timeout: 30_000 });
    const accRow = card.getByRole('row', { name: /Accession number/ });
    await expect.poll(() => accRow.textContent(), { timeout: 10_000 }).toContain('✗ mismatch');
    expect(await accRow.textContent()).toContain('WRONG-ACC');
    expect(await accRow.textContent()).toContain(accession);
    await docShot(page, 'upload-compare');

    // The tag editor corrects AccessionNumber from the order and records it.
    await card.getByLabel('Set Accession number').check();
    await card.getByRole('button', { name: 'Apply corrections' }).click();
    await card.getByText(/Corrected in 13 files/).waitFor({ timeout: 30_000 });
    expect(await accRow.textContent()).toContain('✓ match');

    await page.getByRole('button', { name: 'Upload 13 files' }).click();
    await page
      .getByText(/13 stored · 0 held · 0 refused · 0 failed · 0 waiting · 1 skipped/)
      .waitFor({ timeout: 60_000 });
    expect(await page.locator('tr[data-status=stored]').count()).toBe(13);
    expect(await page.locator('tr[data-status=skipped]').textContent()).toContain('not a DICOM Part 10 file');
    await docShot(page, 'upload-results');

    // The stored instances carry the corrected accession and the record of the correction.
    const stored = await f.app.inject({
      method: 'GET',
      url: `/dicom-web/studies/${study}/metadata`,
      headers: { ...admin, accept: 'application/dicom+json' },
    });
    const meta = stored.json() as Record<string, { Value?: unknown[] }>[];
    expect(meta).toHaveLength(13);
    expect(meta.every((m) => m['00080050']?.Value?.[0] === accession)).toBe(true);

    // Order detail, then View images opens OHIF with the study drawn.
    await page.getByRole('link', { name: accession }).click();
    await page.getByRole('heading', { name: new RegExp(`Order ${accession}`) }).waitFor({ timeout: 15_000 });
    await page.getByRole('table', { name: 'Series' }).first().waitFor({ timeout: 15_000 });
    // Edit the order: another procedure code, saved as a new version.
    await page.getByRole('button', { name: 'Edit order' }).click();
    const edit = page.getByRole('form', { name: 'Edit order' });
    await edit.getByLabel('Procedure').selectOption('24627-2');
    await edit.getByRole('button', { name: 'Save order' }).click();
    await page.getByText('CT Chest', { exact: true }).waitFor({ timeout: 15_000 });
    await docShot(page, 'order-detail');
    const [viewer] = await Promise.all([
      page.context().waitForEvent('page', { timeout: 30_000 }),
      page.getByRole('button', { name: 'View images' }).click(),
    ]);
    await waitForDrawnImage(viewer, 90_000);
    await docShot(viewer, 'viewer');
    await viewer.close();

    // An unmatched study (unknown MRN) is held, then linked from the queue to the patient's second order.
    const second = await addOrder(f.app, admin, patientId);
    const held = ctSeries({
      patientId: 'UNKNOWN-MRN-1',
      patientName: 'Webster^A',
      studyInstanceUid: newUid(),
      accessionNumber: 'UNKNOWN-ACC-1',
      slices: 2,
      size: 64,
    });
    await stow(f.app, admin, held.files).catch(() => undefined);
    await page.getByRole('link', { name: 'Reconciliation' }).click();
    const row = page.getByRole('row', { name: /UNKNOWN-MRN-1/ });
    await row.waitFor({ timeout: 15_000 });
    await row.getByRole('button', { name: 'Resolve' }).click();
    await row.getByLabel('Find patient (MRN or name)').fill(mrn);
    await row.getByRole('button', { name: 'Find' }).click();
    await row.getByLabel('Patient', { exact: true }).selectOption(patientId);
    await row.getByLabel('Order').selectOption(second.orderId);
    await docShot(page, 'reconciliation');
    await row.getByRole('button', { name: 'Link to patient and order' }).click();
    await page.getByText('The queue is empty.').waitFor({ timeout: 60_000 });
    const linked = await f.app.inject({ method: 'GET', url: '/api/v1/dicom/unmatched?status=linked', headers: admin });
    const items = (linked.json() as { items: { patientId: string; target: { order: string } | null }[] }).items;
    expect(items.find((i) => i.patientId === 'UNKNOWN-MRN-1')?.target?.order).toBe(second.orderId);

    // Administration: users, grants and clients.
    await page.getByRole('link', { name: 'Administration' }).click();
    await page.getByRole('table', { name: 'OAuth clients' }).getByText('ehr-web').waitFor({ timeout: 15_000 });
    const newUser = page.getByRole('form', { name: 'New user' });
    await newUser.getByLabel('User name').fill('web-new-nurse');
    await newUser.getByLabel('doctor', { exact: true }).uncheck();
    await newUser.getByLabel('nurse', { exact: true }).check();
    await newUser.getByRole('button', { name: 'Add user' }).click();
    await newUser.getByText(/web-new-nurse: initial password \(shown once\) \S{20,}/).waitFor({ timeout: 15_000 });
    const users = page.getByRole('table', { name: 'Users' });
    await users
      .getByRole('row', { name: /web-new-nurse/ })
      .getByRole('button', { name: '0 grants' })
      .click();
    const grant = page.getByRole('form', { name: 'New grant' });
    await grant.getByLabel('Patient id').fill(patientId);
    await grant.getByLabel('Reason').fill('covering');
    await grant.getByRole('button', { name: 'Grant' }).click();
    await page.getByRole('table', { name: 'Grants' }).getByText(patientId).waitFor({ timeout: 15_000 });
    await users
      .getByRole('row', { name: /web-new-nurse/ })
      .getByRole('button', { name: '1 grants' })
      .waitFor();
    await docShot(page, 'admin');
    expect(cspViolations(page)).toEqual([]);
  }, 300_000);

  test('radiologist: writes the report on an assigned order; the order then reads reported', async () => {
    // The reader: a radiologist whose Practitioner the order names as performer (their "imaging-assigned" patients).
    const pr = await fhirPost<Practitioner>(f.app, admin, {
      resourceType: 'Practitioner',
      name: [{ family: 'Reader', given: ['Rita'] }],
    });
    await ensureUser(f.app, {
      username: 'web-reader',
      roles: ['radiologist'],
      password: PASSWORD,
      practitionerId: pr.id ?? '',
    });
    const booked = await bookPatientAndOrder(f.app, admin, 'Reported');
    const order = await fhirPost<ServiceRequest>(f.app, admin, {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24725-4', display: 'CT Head' }] },
      subject: { reference: `Patient/${booked.patientId}` },
      performer: [{ reference: `Practitioner/${pr.id}`, display: 'Reader, Rita' }],
    });
    const accession = order.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'ACSN'))?.value ?? '';
    const series = ctSeries({
      patientId: booked.mrn,
      patientName: 'Reported^Viewer',
      studyInstanceUid: newUid(),
      accessionNumber: accession,
      slices: 2,
      size: 64,
    });
    await stow(f.app, admin, series.files);

    const page = await as('web-reader');
    await page.goto(`${f.baseUrl}/app/orders/${order.id}`);
    const report = page.getByRole('region', { name: 'Report' });
    await report.getByText('No report yet.').waitFor({ timeout: 15_000 });
    const form = report.getByRole('form', { name: 'Write report' });
    await form.getByLabel('Conclusion').fill('No acute intracranial abnormality.');
    await form.getByLabel('Report status').selectOption('final');
    await form.getByRole('button', { name: 'Add report' }).click();
    await report.getByText('No acute intracranial abnormality.', { exact: true }).waitFor({ timeout: 15_000 });
    await page.locator('.workflow-status').getByText('reported').waitFor({ timeout: 15_000 });
    expect(await report.locator('dd').first().textContent()).toBe('final');
    expect(await report.locator('dd').nth(2).textContent()).toBe('Reader, Rita');
    // A released report is not written again from the app.
    await report.getByText('The report is final.').waitFor();
    expect(await report.getByRole('form', { name: 'Write report' }).count()).toBe(0);
    await docShot(page, 'order-report');

    // On the server: a final DiagnosticReport based on the order, naming the study; the order reads reported.
    const found = await f.app.inject({
      method: 'GET',
      url: `/fhir/DiagnosticReport?based-on=ServiceRequest/${order.id}`,
      headers: admin,
    });
    const reports = (found.json() as { entry?: { resource: DiagnosticReport }[] }).entry ?? [];
    expect(reports).toHaveLength(1);
    expect(reports[0]?.resource).toMatchObject({
      status: 'final',
      conclusion: 'No acute intracranial abnormality.',
      resultsInterpreter: [{ reference: `Practitioner/${pr.id}`, display: 'Reader, Rita' }],
    });
    expect(reports[0]?.resource.imagingStudy).toHaveLength(1);
    const after = (
      await f.app.inject({ method: 'GET', url: `/fhir/ServiceRequest/${order.id}`, headers: admin })
    ).json() as ServiceRequest;
    expect(after.extension).toContainEqual(expect.objectContaining({ valueCode: 'reported' }));
    expect(cspViolations(page)).toEqual([]);

    // A nurse with a grant to the patient reads the report but is not offered to write one.
    await grantPatient(f.app, 'web-nurse', booked.patientId);
    const nurse = await as('web-nurse');
    await nurse.goto(`${f.baseUrl}/app/orders/${order.id}`);
    const seen = nurse.getByRole('region', { name: 'Report' });
    await seen.getByText('No acute intracranial abnormality.', { exact: true }).waitFor({ timeout: 15_000 });
    expect(await seen.getByRole('form', { name: 'Write report' }).count()).toBe(0);
  }, 120_000);

  test('doctor: edits a visit (start, end, class, reason, status) as a new version', async () => {
    const booked = await bookPatientAndOrder(f.app, admin, 'Visited');
    const visit = await fhirPost<Encounter>(f.app, admin, {
      resourceType: 'Encounter',
      status: 'arrived',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      subject: { reference: `Patient/${booked.patientId}` },
      period: { start: '2026-03-04T08:00:00Z' },
      reasonCode: [{ text: 'cough' }],
    });
    await grantPatient(f.app, 'web-doctor', booked.patientId);
    const page = await as('web-doctor');
    await page.goto(`${f.baseUrl}/app/patients/${booked.patientId}`);
    const visits = page.getByRole('table', { name: 'Visits' });
    await visits.getByText('cough').waitFor({ timeout: 15_000 });
    await visits.getByRole('button', { name: 'Edit the visit of 2026-03-04' }).click();
    const form = page.getByRole('form', { name: 'Edit visit' });
    await form.getByLabel('Edit visit end').fill('2030-03-04T09:30');
    await form.getByLabel('Edit visit class').selectOption('EMER');
    await form.getByLabel('Edit visit reason').fill('persistent cough');
    await form.getByLabel('Edit visit status').selectOption('finished');
    await form.getByRole('button', { name: 'Save visit' }).click();
    await visits.getByText('persistent cough').waitFor({ timeout: 15_000 });
    expect(await visits.textContent()).toContain('emergency');
    expect(await form.count()).toBe(0);

    const stored = (
      await f.app.inject({ method: 'GET', url: `/fhir/Encounter/${visit.id}`, headers: admin })
    ).json() as Encounter;
    expect(stored).toMatchObject({
      status: 'finished',
      class: { code: 'EMER' },
      reasonCode: [{ text: 'persistent cough' }],
      period: { start: '2026-03-04T08:00:00.000Z' },
      meta: { versionId: '2' },
    });
    expect(stored.period?.end?.startsWith('2030-03-04')).toBe(true);
    expect(cspViolations(page)).toEqual([]);
  }, 120_000);

  test('admin: deactivates a user (their token is refused), registers a client and changes it', async () => {
    const leaver = await tokenFor(f.app, {
      user: { username: 'web-leaver', roles: ['nurse'], password: PASSWORD },
      scope: 'user/*.rs',
    });
    const me = () => fetch(`${f.baseUrl}/api/v1/me`, { headers: { authorization: `Bearer ${leaver}` } });
    expect((await me()).status).toBe(200);

    const page = await as('web-admin');
    await page.getByRole('link', { name: 'Administration' }).click();
    const users = page.getByRole('table', { name: 'Users' });
    await users.getByRole('button', { name: 'Deactivate web-leaver', exact: true }).click();
    await users.getByRole('button', { name: 'Activate web-leaver', exact: true }).waitFor({ timeout: 15_000 });
    // The Active column (the fifth) of the user's row.
    expect(
      await users
        .getByRole('row', { name: /web-leaver/ })
        .locator('td')
        .nth(4)
        .textContent(),
    ).toBe('no');
    expect((await me()).status).toBe(401);

    const form = page.getByRole('form', { name: 'New client' });
    await form.getByLabel('Client id').fill('web-portal');
    await form.getByLabel('Client name').fill('Patient portal');
    await form.getByLabel('Kind').selectOption('public');
    await form.getByLabel('Redirect URIs (one a line)').fill('https://portal.example/callback');
    await form.getByLabel('Scope ceiling').fill('openid fhirUser launch/patient patient/*.rs');
    await form.getByRole('button', { name: 'Register client' }).click();
    const clients = page.getByRole('table', { name: 'OAuth clients' });
    const row = clients.getByRole('row', { name: /web-portal/ });
    await row.waitFor({ timeout: 15_000 });
    await docShot(page, 'admin-clients');

    // A wrong redirect URI is refused with the server's reason; nothing changes.
    await row.getByRole('button', { name: 'Edit client web-portal' }).click();
    const edit = page.getByRole('form', { name: 'Edit client web-portal' });
    await edit.getByLabel('Redirect URIs (one a line)').fill('http://portal.example/callback');
    await edit.getByRole('button', { name: 'Save client' }).click();
    await edit
      .getByRole('alert')
      .getByText(/must be https/)
      .waitFor({ timeout: 15_000 });
    await edit.getByLabel('Redirect URIs (one a line)').fill('https://portal.example/callback');
    await edit.getByLabel('Active').uncheck();
    await edit.getByRole('button', { name: 'Save client' }).click();
    // The Active column (the sixth) of the client's row.
    await expect.poll(() => row.locator('td').nth(5).textContent(), { timeout: 15_000 }).toBe('no');

    const listed = await f.app.inject({ method: 'GET', url: '/api/v1/admin/clients', headers: admin });
    const items = (listed.json() as { items: { clientId: string }[] }).items;
    expect(items.find((c) => c.clientId === 'web-portal')).toMatchObject({
      kind: 'public',
      name: 'Patient portal',
      redirectUris: ['https://portal.example/callback'],
      scopeCeiling: 'openid fhirUser launch/patient patient/*.rs',
      active: false,
    });
    expect(cspViolations(page)).toEqual([]);
  }, 120_000);

  test('a zip of DICOMDIR media: unpacked in the browser, the DICOMDIR skipped, an unknown patient held', async () => {
    const zip = zippedMedia(
      work,
      // A DICOMDIR record needs a PatientName (dcmmkdir refuses the file without one).
      withElements(
        rewrite(pydicomFile('CT_small.dcm'), {
          StudyInstanceUID: newUid(),
          SeriesInstanceUID: newUid(),
          SOPInstanceUID: newUid(),
          PatientID: 'ZIP-UNKNOWN-1',
          AccessionNumber: 'ZIP-ACC-1',
        }),
        { '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Zip^Unknown' }] } },
      ),
    );

    const page = await as('web-admin');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Upload' }).click();
    await page.getByLabel('Choose files or zip').setInputFiles(zip);
    await page.getByText('DICOMDIR index (the files it lists are uploaded)').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Upload 1 files' }).click();
    await page
      .getByText(/0 stored · 1 held · 0 refused · 0 failed · 0 waiting · 1 skipped/)
      .waitFor({ timeout: 60_000 });
    expect(await page.locator('tr[data-status=held]').textContent()).toContain(
      'Held for reconciliation: stored, not linked to a patient and order yet',
    );
    const queue = await f.app.inject({ method: 'GET', url: '/api/v1/dicom/unmatched?status=pending', headers: admin });
    const items = (queue.json() as { items: { patientId: string }[] }).items;
    expect(items.some((i) => i.patientId === 'ZIP-UNKNOWN-1')).toBe(true);
    expect(cspViolations(page)).toEqual([]);
  }, 120_000);

  test('upload controls: retry after a network failure, pause and resume, cancel', async () => {
    const booked = await bookPatientAndOrder(f.app, admin, 'Controls');
    const folder = join(work, 'controls');
    mkdirSync(folder, { recursive: true });
    const series = ctSeries({
      patientId: booked.mrn,
      patientName: 'Controls^Viewer',
      studyInstanceUid: newUid(),
      accessionNumber: booked.accession,
      slices: 12,
      size: 32,
    });
    for (const [i, b] of series.files.entries()) writeFileSync(join(folder, `ct-${i}.dcm`), b);
    const page = await as('web-admin');
    await page.goto(`${f.baseUrl}/app/upload?order=${booked.orderId}`);
    const pick = async () => {
      await page.getByLabel('Choose a folder').setInputFiles(folder);
      await page.getByRole('button', { name: 'Upload 12 files' }).waitFor({ timeout: 30_000 });
    };
    const summary = (text: RegExp) => page.getByText(text).waitFor({ timeout: 60_000 });

    // The first batch (10 files) fails in transport; the second is stored; "Retry failed" sends the ten again.
    let calls = 0;
    await page.route('**/dicom-web/studies', (route) => (++calls === 1 ? route.abort('failed') : route.continue()));
    await pick();
    await page.getByRole('button', { name: 'Upload 12 files' }).click();
    await summary(/2 stored · 0 held · 0 refused · 10 failed · 0 waiting/);
    expect(await page.locator('tr[data-status=failed]').first().textContent()).toContain('network error');
    await page.getByRole('button', { name: 'Retry failed' }).click();
    await summary(/12 stored · 0 held · 0 refused · 0 failed · 0 waiting/);
    await page.unroute('**/dicom-web/studies');

    // Pause while the first batch is on its way: it completes, the rest waits; Resume sends the rest.
    const held = (then: () => Promise<void>) =>
      whileFirstStowHeld(page, () => page.getByRole('button', { name: 'Upload 12 files' }).click(), then);
    await page.getByRole('button', { name: 'Clear' }).click();
    await pick();
    await held(() => page.getByRole('button', { name: 'Pause' }).click());
    await summary(/10 stored · 0 held · 0 refused · 0 failed · 2 waiting/);
    await page.getByRole('button', { name: 'Resume' }).click();
    await summary(/12 stored · 0 held · 0 refused · 0 failed · 0 waiting/);
    await page.unroute('**/dicom-web/studies');

    // Cancel while the first batch is on its way: nothing more is sent, every file waits again.
    await page.getByRole('button', { name: 'Clear' }).click();
    await pick();
    await held(() => page.getByRole('button', { name: 'Cancel' }).click());
    await summary(/0 stored · 0 held · 0 refused · 0 failed · 12 waiting/);
    expect(await page.getByRole('button', { name: 'Upload 12 files' }).isEnabled()).toBe(true);
  }, 180_000);

  test('auditor: reads the audit trail, the event detail, and exports NDJSON', async () => {
    const booked = await bookPatientAndOrder(f.app, admin, 'Audited');
    const page = await as('web-auditor');
    await page.waitForURL(/\/app\/audit$/, { timeout: 15_000 });
    await page.getByLabel('Patient id').fill(booked.patientId);
    await page.getByRole('button', { name: 'Search' }).click();
    const events = page.getByRole('table', { name: 'Audit events' });
    await events.locator('tbody tr').first().waitFor({ timeout: 15_000 });
    await events.locator('tbody tr button').first().click();
    await page.getByRole('region', { name: 'Event detail' }).getByText(`Patient/${booked.patientId}`).first().waitFor();
    await docShot(page, 'audit');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 30_000 }),
      page.getByRole('button', { name: 'Export NDJSON' }).click(),
    ]);
    const file = join(work, 'audit.ndjson');
    await download.saveAs(file);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect((JSON.parse(l) as { resourceType: string }).resourceType).toBe('AuditEvent');
  }, 120_000);

  test.each([
    ['web-doctor', ['Patients', 'Upload'], ['Reconciliation', 'Audit', 'Administration'], false],
    ['web-nurse', ['Patients'], ['Upload', 'Reconciliation', 'Audit', 'Administration'], false],
    ['web-radiologist', ['Patients', 'Upload', 'Reconciliation'], ['Audit', 'Administration'], false],
    ['web-auditor', ['Audit'], ['Patients', 'Upload', 'Reconciliation', 'Administration'], false],
    ['web-admin', ['Patients', 'Upload', 'Reconciliation', 'Administration'], ['Audit'], true],
  ])(
    '%s sees only what the policy lets it do',
    async (user, shown, hidden, createsPatients) => {
      const page = await as(user);
      const nav = page.getByRole('navigation', { name: 'Main' });
      for (const name of shown) await nav.getByRole('link', { name }).waitFor({ timeout: 15_000 });
      for (const name of hidden) expect(await nav.getByRole('link', { name }).count()).toBe(0);
      if (shown.includes('Patients')) {
        await page.getByRole('heading', { name: 'Patients' }).waitFor({ timeout: 15_000 });
        expect(await page.getByRole('region', { name: 'New patient' }).count()).toBe(createsPatients ? 1 : 0);
        if (user === 'web-admin') await docShot(page, 'patients');
        if (user === 'web-doctor') {
          // Tablet width: the same screen still works (menus wrap, tables stay readable).
          await page.setViewportSize({ width: 820, height: 1180 });
          await docShot(page, 'patients-tablet');
        }
      }
      // What is hidden is refused by the server too: the admin API for anyone but the admin.
      const status = await page.evaluate(async () => {
        const key = sessionStorage.getItem('SMART_KEY');
        const state = JSON.parse(sessionStorage.getItem(JSON.parse(key ?? '""')) ?? '{}');
        const res = await fetch('/api/v1/admin/users', {
          headers: { authorization: `Bearer ${state.tokenResponse?.access_token}` },
        });
        return res.status;
      });
      expect(status).toBe(user === 'web-admin' ? 200 : 403);
      expect(cspViolations(page)).toEqual([]);
    },
    60_000,
  );
});
