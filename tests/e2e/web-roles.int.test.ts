import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Practitioner, ServiceRequest } from '@medplum/fhirtypes';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { adminToken, bearer, ensureUser, grantPatient } from '../helpers/auth.ts';
import { fhirPost } from '../helpers/stow.ts';
import { seriousViolations } from './helpers/axe.ts';
import {
  type ListeningFacade,
  launchChromium,
  recordConsole,
  startFacade,
  waitForDrawnImage,
} from './helpers/browser.ts';
import { ctSeries, newUid } from './helpers/ct-phantom.ts';
import { type Auth, bookPatientAndOrder, stow } from './helpers/ehr.ts';
import { docShot, signIn } from './helpers/web-app.ts';
import { type Allowed, apiRefusals, type RoleCase, WALKS } from './helpers/web-roles.ts';

/**
 * The staff web app walked as each role, in one browser against one facade: every role signs in and does the steps
 * of the daily path its policy allows (create a patient, a visit and an order; upload a folder with one tag
 * corrected; see the per-file results; open the viewer from the order and see the image; reconcile a held study;
 * read the audit trail; administer users). For every step a role may not do, the step is not offered on screen and
 * the API refuses it. axe-core audits every screen on the way (no serious or critical violation), and a keyboard-only
 * user signs in and reaches a patient chart. Every wait is bounded.
 */

const PASSWORD = 'web-roles-test-password';
/** The focused element, and whether it shows a focus indicator (an outline or a box shadow). */
const FOCUSED = `(() => {
  const a = document.activeElement;
  const style = a ? getComputedStyle(a) : undefined;
  return {
    tag: a ? a.tagName.toLowerCase() : '',
    name: (a && a.getAttribute('name')) || '',
    text: ((a && a.textContent) || '').trim(),
    visible: style !== undefined && (style.outlineStyle !== 'none' || style.boxShadow !== 'none'),
    outline: style ? style.outlineStyle : '',
  };
})()`;
let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
let work: string;
const open: { page: Page; logs: string[] }[] = [];

/** What each role finds prepared by the admin: its patient with an order that has a study, and spare orders. */
interface Prepared {
  patientId: string;
  mrn: string;
  family: string;
  viewOrder: string;
  spareOrder: string;
  uploadOrder: { id: string; accession: string };
}
const prepared = new Map<string, Prepared>();

async function order(patientId: string, performer?: string): Promise<{ id: string; accession: string }> {
  const o = await fhirPost<ServiceRequest>(f.app, admin, {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24725-4', display: 'CT Head' }] },
    subject: { reference: `Patient/${patientId}` },
    ...(performer ? { performer: [{ reference: performer }] } : {}),
  });
  const accession = o.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'ACSN'))?.value ?? '';
  return { id: o.id ?? '', accession };
}

/** A patient and orders for `c`: granted to doctors and nurses, assigned (performer) to radiologists. */
async function prepare(c: RoleCase): Promise<void> {
  const pr = await fhirPost<Practitioner>(f.app, admin, {
    resourceType: 'Practitioner',
    name: [{ family: c.family, given: ['Staff'] }],
  });
  await ensureUser(f.app, { username: c.user, roles: [c.role], password: PASSWORD, practitionerId: pr.id ?? '' });
  if (c.role === 'auditor') return;
  const booked = await bookPatientAndOrder(f.app, admin, c.family);
  const performer = c.role === 'radiologist' ? `Practitioner/${pr.id}` : undefined;
  const view = await order(booked.patientId, performer);
  const series = ctSeries({
    patientId: booked.mrn,
    patientName: `${c.family}^Viewer`,
    studyInstanceUid: newUid(),
    accessionNumber: view.accession,
    slices: 2,
    size: 64,
  });
  await stow(f.app, admin, series.files);
  const spare = await order(booked.patientId, performer);
  const upload = await order(booked.patientId, performer);
  if (c.role === 'doctor' || c.role === 'nurse') await grantPatient(f.app, c.user, booked.patientId);
  prepared.set(c.user, {
    patientId: booked.patientId,
    mrn: booked.mrn,
    family: booked.family,
    viewOrder: view.id,
    spareOrder: spare.id,
    uploadOrder: upload,
  });
}

async function as(username: string): Promise<Page> {
  const page = await signIn(browser, f.baseUrl, username, PASSWORD);
  open.push({ page, logs: recordConsole(page) });
  return page;
}

/** Every screen is audited where it is shown: no serious or critical axe finding. */
async function audit(page: Page, screen: string): Promise<void> {
  expect(await seriousViolations(page), `axe on ${screen}`).toEqual([]);
}

/** The signed-in user's access token, as the app holds it (fhirclient's SMART state in sessionStorage). */
async function tokenOf(page: Page): Promise<Auth> {
  const token = await page.evaluate(() => {
    const key = sessionStorage.getItem('SMART_KEY');
    const state = JSON.parse(sessionStorage.getItem(JSON.parse(key ?? '""')) ?? '{}');
    return String(state.tokenResponse?.access_token ?? '');
  });
  return bearer(token);
}

beforeAll(async () => {
  f = await startFacade({ stowUnmatched: 'hold' });
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  for (const c of WALKS) await prepare(c);
  await ensureUser(f.app, { username: 'role-target', roles: ['nurse'], password: PASSWORD });
  work = mkdtempSync(join(tmpdir(), 'ehr-web-roles-'));
}, 180_000);

afterEach(async (ctx) => {
  for (const o of open.splice(0)) {
    if (ctx.task.result?.state === 'fail') console.log(`${o.page.url()}\n${o.logs.join('\n')}`);
    await o.page.context().close();
  }
});

afterAll(async () => {
  await browser?.close();
  await f?.app.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A folder of three CT slices of the patient whose accession number is wrong; returns the folder and its study. */
function examFolder(p: Prepared, name: string): { folder: string; study: string } {
  const folder = join(work, name);
  mkdirSync(folder, { recursive: true });
  const study = newUid();
  const series = ctSeries({
    patientId: p.mrn,
    patientName: `${p.family}^Viewer`,
    patientBirthDate: '19700101',
    studyInstanceUid: study,
    accessionNumber: 'WRONG-ACC',
    slices: 3,
    size: 64,
  });
  for (const [i, b] of series.files.entries()) writeFileSync(join(folder, `ct-${i}.dcm`), b);
  return { folder, study };
}

async function walk(c: RoleCase, page: Page, may: Allowed): Promise<void> {
  const nav = page.getByRole('navigation', { name: 'Main' });
  const auth = await tokenOf(page);
  for (const name of c.menus) await nav.getByRole('link', { name }).waitFor({ timeout: 15_000 });
  for (const name of c.hidden) expect(await nav.getByRole('link', { name }).count(), name).toBe(0);
  const p = prepared.get(c.user);

  if (p) {
    // Patients: create one (admins only), or find the prepared one.
    await page.getByRole('heading', { name: 'Patients' }).waitFor({ timeout: 15_000 });
    await page.getByRole('table', { name: 'Patients' }).waitFor({ timeout: 15_000 });
    await audit(page, 'patients');
    const newPatient = page.getByRole('region', { name: 'New patient' });
    expect(await newPatient.count()).toBe(may.createPatient ? 1 : 0);
    let patientId = p.patientId;
    if (may.createPatient) {
      await newPatient.getByLabel('Family name').fill(`${c.family}New`);
      await newPatient.getByLabel('Given names').fill('Ada');
      await newPatient.getByLabel('Birth date').fill('1970-01-01');
      await newPatient.getByRole('button', { name: 'Create patient' }).click();
      await page.getByRole('heading', { name: new RegExp(`${c.family}New, Ada`) }).waitFor({ timeout: 15_000 });
      patientId = page.url().split('/').at(-1) ?? '';
    } else {
      await page
        .getByRole('link', { name: new RegExp(c.family) })
        .first()
        .click();
    }
    const chart = page.getByRole('heading', { level: 1 });
    await chart.waitFor({ timeout: 15_000 });
    await page.getByRole('heading', { name: 'Orders', exact: true }).waitFor({ timeout: 15_000 });
    await audit(page, 'patient chart');

    // A visit and an order, or neither offered.
    const orderForm = page.getByRole('form', { name: 'New order' });
    let uploadTo = p.uploadOrder;
    if (may.writeOrders) {
      await page.getByLabel('Reason').fill(`${c.role} visit`);
      await page.getByRole('button', { name: 'Add visit' }).click();
      await page.getByRole('table', { name: 'Visits' }).getByText(`${c.role} visit`).waitFor({ timeout: 15_000 });
      await orderForm.getByLabel('Visit').selectOption({ index: 1 });
      // The order the click creates is the one that was not there before (the Orders table is there already, and
      // another order may carry the same `authored` second).
      const ordersNow = async () => {
        const res = await f.app.inject({
          method: 'GET',
          url: `/fhir/ServiceRequest?patient=${patientId}&_count=100`,
          headers: admin,
        });
        return ((res.json() as { entry?: { resource: ServiceRequest }[] }).entry ?? []).map((e) => e.resource);
      };
      const known = new Set((await ordersNow()).map((o) => o.id));
      await orderForm.getByRole('button', { name: 'Create order' }).click();
      const orders = page.getByRole('table', { name: 'Orders' });
      await orders.waitFor({ timeout: 15_000 });
      let created: ServiceRequest | undefined;
      await expect
        .poll(
          async () => {
            created = (await ordersNow()).find((o) => !known.has(o.id));
            return created?.id;
          },
          { timeout: 15_000 },
        )
        .toBeTruthy();
      const accession = created?.identifier?.find((i) => i.type?.coding?.some((x) => x.code === 'ACSN'))?.value ?? '';
      await orders.getByRole('link', { name: accession }).waitFor({ timeout: 15_000 });
      if (patientId === p.patientId) uploadTo = { id: created?.id ?? '', accession };
    } else {
      expect(await orderForm.count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Add visit' }).count()).toBe(0);
    }

    if (may.upload) {
      // Upload into an order of the prepared patient (whose MRN the files carry), one tag corrected on screen.
      if (patientId !== p.patientId) await page.goto(`${f.baseUrl}/app/patients/${p.patientId}`);
      const orders = page.getByRole('table', { name: 'Orders' });
      await orders
        .getByRole('row', { name: new RegExp(uploadTo.accession) })
        .getByRole('link', { name: 'Upload images' })
        .click();
      await page.getByText(`MRN ${p.mrn}`).waitFor({ timeout: 15_000 });
      const { folder, study } = examFolder(p, `exam-${c.role}`);
      await page.getByLabel('Choose a folder').setInputFiles(folder);
      const card = page.getByRole('region', { name: `Study ${study}` });
      await card.waitFor({ timeout: 30_000 });
      const accRow = card.getByRole('row', { name: /Accession number/ });
      await expect.poll(() => accRow.textContent(), { timeout: 10_000 }).toContain('✗ mismatch');
      await audit(page, 'upload (compare)');
      await card.getByLabel('Set Accession number').check();
      await card.getByRole('button', { name: 'Apply corrections' }).click();
      await card.getByText(/Corrected in 3 files/).waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Upload 3 files' }).click();
      await page.getByText(/3 stored · 0 held · 0 refused · 0 failed · 0 waiting/).waitFor({ timeout: 60_000 });
      expect(await page.locator('tr[data-status=stored]').count()).toBe(3);
      await audit(page, 'upload (results)');
      await page.getByRole('link', { name: uploadTo.accession }).click();
    } else {
      expect(await page.getByRole('link', { name: 'Upload images' }).count()).toBe(0);
      await page.goto(`${f.baseUrl}/app/orders/${p.viewOrder}`);
    }

    // The order, its study and the viewer.
    await page.getByRole('table', { name: 'Series' }).first().waitFor({ timeout: 15_000 });
    const report = page.getByRole('region', { name: 'Report' });
    await report.waitFor({ timeout: 15_000 });
    expect(await report.getByRole('form', { name: 'Write report' }).count()).toBe(may.report ? 1 : 0);
    await audit(page, 'order detail');
    const [viewer] = await Promise.all([
      page.context().waitForEvent('page', { timeout: 30_000 }),
      page.getByRole('button', { name: 'View images' }).click(),
    ]);
    await waitForDrawnImage(viewer, 90_000);
    await viewer.close();
  }

  if (may.reconcile && p) {
    const held = ctSeries({
      patientId: `UNKNOWN-${c.role}`,
      patientName: `${c.family}^Held`,
      studyInstanceUid: newUid(),
      accessionNumber: `UNKNOWN-ACC-${c.role}`,
      slices: 1,
      size: 32,
    });
    await stow(f.app, admin, held.files).catch(() => undefined);
    await nav.getByRole('link', { name: 'Reconciliation' }).click();
    const row = page.getByRole('row', { name: new RegExp(`UNKNOWN-${c.role}`) });
    await row.waitFor({ timeout: 15_000 });
    await audit(page, 'reconciliation');
    await row.getByRole('button', { name: 'Resolve' }).click();
    await row.getByLabel('Find patient (MRN or name)').fill(p.mrn);
    await row.getByRole('button', { name: 'Find' }).click();
    await row.getByLabel('Patient', { exact: true }).selectOption(p.patientId);
    await row.getByLabel('Order').selectOption(p.spareOrder);
    await audit(page, 'reconciliation (resolve)');
    await row.getByRole('button', { name: 'Link to patient and order' }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
  }

  if (may.audit) {
    await nav.getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('Patient id').fill(prepared.get('role-doctor')?.patientId ?? '');
    await page.getByRole('button', { name: 'Search' }).click();
    const events = page.getByRole('table', { name: 'Audit events' });
    await events.locator('tbody tr').first().waitFor({ timeout: 15_000 });
    await audit(page, 'audit');
    await events.locator('tbody tr button').first().click();
    await page.getByRole('region', { name: 'Event detail' }).waitFor({ timeout: 15_000 });
    await audit(page, 'audit (event detail)');
  }

  if (may.administer) {
    await nav.getByRole('link', { name: 'Administration' }).click();
    const users = page.getByRole('table', { name: 'Users' });
    await users.getByRole('button', { name: 'Edit roles of role-target' }).click();
    const form = page.getByRole('form', { name: 'Roles of role-target' });
    await audit(page, 'administration');
    await form.getByLabel('nurse', { exact: true }).uncheck();
    await form.getByLabel('radiologist', { exact: true }).check();
    await docShot(page, 'admin-roles');
    await form.getByRole('button', { name: 'Save roles' }).click();
    await users
      .getByRole('row', { name: /role-target/ })
      .getByText('radiologist')
      .waitFor({ timeout: 15_000 });
    expect(await form.count()).toBe(0);
  }

  await nav.getByRole('link', { name: 'Connected apps' }).click();
  await page.getByRole('table', { name: 'Connected apps' }).waitFor({ timeout: 15_000 });
  await audit(page, 'connected apps');

  // What the screens did not offer, the API refuses with this very token.
  for (const r of apiRefusals(c, may, prepared.get('role-doctor')?.patientId ?? '')) {
    const res = await f.app.inject({ ...r.request, headers: { ...auth, ...r.request.headers } });
    expect(r.refused(res.statusCode, res.body), `${c.role}: ${r.what} → ${res.statusCode} ${res.body}`).toBe(true);
  }
  expect(open.flatMap((o) => o.logs).filter((l) => /Content Security Policy/i.test(l))).toEqual([]);
}

describe('the staff web app, walked as each role', () => {
  test('the sign-in page passes the accessibility audit', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${f.baseUrl}/app/`, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 15_000 });
    await audit(page, 'app sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('input[name=username]', { timeout: 30_000 });
    await audit(page, 'login page');
    await context.close();
  });

  test.each(WALKS.map((c) => [c.role, c] as const))(
    '%s: does what its policy allows, is not offered the rest, and the API refuses it',
    async (_, c) => {
      const page = await as(c.user);
      await walk(c, page, c.may);
    },
    240_000,
  );

  test('keyboard only: sign in and reach a patient chart with Tab and Enter', async () => {
    const p = prepared.get('role-doctor');
    const context = await browser.newContext();
    const page = await context.newPage();
    open.push({ page, logs: recordConsole(page) });
    await page.goto(`${f.baseUrl}/app/`, { timeout: 30_000 });
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: 15_000 });

    /** Presses Tab until the focused element is the one `matches` names; each stop must show a focus indicator. */
    const tabTo = async (matches: (el: { tag: string; name: string; text: string }) => boolean, what: string) => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press('Tab');
        const el = (await page.evaluate(FOCUSED)) as { tag: string; name: string; text: string; visible: boolean };
        if (el.tag !== 'body') expect(el.visible, `focus indicator on ${JSON.stringify(el)}`).toBe(true);
        if (matches(el)) return;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await tabTo((e) => e.tag === 'button' && e.text === 'Sign in', 'the Sign in button');
    await page.keyboard.press('Enter');
    await page.waitForSelector('input[name=username]', { timeout: 30_000 });
    await tabTo((e) => e.name === 'username', 'the user name');
    await page.keyboard.type('role-doctor');
    await tabTo((e) => e.name === 'password', 'the password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('table', { name: 'Patients' }).waitFor({ timeout: 30_000 });
    await tabTo((e) => e.tag === 'a' && e.text.includes(p?.family ?? '?'), 'the patient link');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: new RegExp(p?.family ?? '?') }).waitFor({ timeout: 15_000 });
    expect(page.url()).toContain(`/app/patients/${p?.patientId}`);
  }, 60_000);
});
