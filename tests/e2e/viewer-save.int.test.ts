import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Practitioner, ServiceRequest } from '@medplum/fhirtypes';
import { adminToken, bearer, tokenFor } from '../helpers/auth.ts';
import { fhirPost } from '../helpers/stow.ts';
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
import { type Auth, type Booked, bookPatientAndOrder, type Doctor, doctor, stow } from './helpers/ehr.ts';

/**
 * Saving a report from OHIF (its own SR export, `storeMeasurements`, as "Create Report" runs it) in a real browser:
 * the radiologist the order is assigned to (allowed to write ImagingStudy for the patient) saves into the open study and the SR is there after a reload;
 * a viewer link (read-only token) is refused and the reason is shown. Every wait is bounded.
 */

const VIEWPORT = { width: 1280, height: 800 };
const RENDER_TIMEOUT_MS = 60_000;

let f: ListeningFacade;
let browser: Browser;
let admin: Auth;
let dr: Doctor;
let a: Booked;
let study: string;
/** A radiologist: the CT order of patient A names them as performer (their "imaging-assigned" patients). */
const rad = { username: 'rad-save', password: `pw-${randomUUID()}` };
let radOrder: string;

beforeAll(async () => {
  f = await startFacade();
  browser = await launchChromium();
  admin = bearer(await adminToken(f.app));
  a = await bookPatientAndOrder(f.app, admin, 'Saver');
  dr = await doctor(f.app, 'dr-save', [a.patientId]);
  const pr = await fhirPost<Practitioner>(f.app, admin, { resourceType: 'Practitioner', name: [{ family: 'Reader' }] });
  await tokenFor(f.app, {
    user: { username: rad.username, roles: ['radiologist'], password: rad.password, practitionerId: pr.id! },
    scope: 'openid fhirUser user/*.rs',
  });
  const order = await fhirPost<ServiceRequest>(f.app, admin, {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24725-4', display: 'CT Head' }] },
    subject: { reference: `Patient/${a.patientId}` },
    performer: [{ reference: `Practitioner/${pr.id}` }],
  });
  radOrder = order.id!;
  const accession = order.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'ACSN'))?.value ?? '';
  const series = ctSeries({
    patientId: a.mrn,
    patientName: `${a.family}^Viewer`,
    studyInstanceUid: newUid(),
    accessionNumber: accession,
    slices: 3,
    size: 128,
  });
  await stow(f.app, admin, series.files);
  study = series.studyInstanceUid;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await f?.app.close();
});

/** Signs the radiologist in when OHIF sends the page to the login form, then waits (bounded) for the image. */
async function signInIfAsked(page: Page): Promise<void> {
  const form = page.locator('input[name=username]');
  // Polled, as the login page's CSP forbids the evaluation waitForFunction uses there.
  const deadline = Date.now() + RENDER_TIMEOUT_MS;
  for (;;) {
    if (await form.isVisible().catch(() => false)) break;
    if (await imageDrawn(page).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error('neither the login form nor an image appeared');
    await page.waitForTimeout(250);
  }
  await page.fill('input[name=username]', rad.username);
  await page.fill('input[name=password]', rad.password);
  await Promise.all([page.waitForURL(/\/viewer/, { timeout: 30_000 }), page.click('button[type=submit]')]);
  await waitForDrawnImage(page, RENDER_TIMEOUT_MS);
}

/** Draws a Length measurement across the middle of the first viewport (the drag is repeated, bounded, until OHIF has it). */
async function drawLength(page: Page): Promise<void> {
  const count = () =>
    page.evaluate(
      () =>
        (
          globalThis as unknown as { services: { measurementService: { getMeasurements(): unknown[] } } }
        ).services.measurementService.getMeasurements().length,
    );
  for (let attempt = 0; attempt < 4; attempt++) {
    await page.evaluate(() => {
      const w = globalThis as unknown as { commandsManager: { runCommand(n: string, o: object): unknown } };
      w.commandsManager.runCommand('setToolActive', { toolName: 'Length' });
    });
    const canvas = page.locator('canvas.cornerstone-canvas').first();
    const box = await canvas.boundingBox();
    if (!box) throw new Error('no viewport canvas');
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2 + attempt * 10;
    await page.mouse.move(cx - 40, cy - 20);
    await page.mouse.down();
    await page.mouse.move(cx + 40, cy + 20, { steps: 8 });
    await page.mouse.up();
    for (let i = 0; i < 20; i++) {
      if ((await count()) > 0) return;
      await page.waitForTimeout(250);
    }
  }
  throw new Error('OHIF recorded no Length measurement');
}

/** OHIF's own SR export of the current measurements into the active data source (what "Create Report" runs). */
function saveReport(page: Page): Promise<string> {
  return page.evaluate(async () => {
    const w = globalThis as unknown as {
      commandsManager: { runCommand(n: string, o: object): unknown };
      services: { measurementService: { getMeasurements(): unknown[] } };
    };
    try {
      await w.commandsManager.runCommand('storeMeasurements', {
        measurementData: w.services.measurementService.getMeasurements(),
        dataSource: 'dicomweb', // the data source's name in ohif-config/app-config.js
        additionalFindingTypes: ['ArrowAnnotate'],
        options: { SeriesDescription: 'E2E report', SeriesNumber: 4700 },
      });
      return 'saved';
    } catch (err) {
      return `failed: ${(err as Error | undefined)?.message ?? JSON.stringify(err)}`;
    }
  });
}

const srSeries = async (): Promise<unknown[]> => {
  const res = await f.app.inject({ url: `/dicom-web/studies/${study}/series?Modality=SR`, headers: admin });
  return res.statusCode === 200 ? (JSON.parse(res.body) as unknown[]) : [];
};

describe('saving an SR from OHIF', () => {
  test('the assigned radiologist saves an SR; it is in the study and shown again after a reload', async () => {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const calls: DicomWebCall[] = recordDicomWeb(page);
    const logs = recordConsole(page);
    try {
      await page.goto(`${f.baseUrl}/viewer?StudyInstanceUIDs=${study}`, { timeout: 30_000 });
      await signInIfAsked(page);
      await drawLength(page);
      expect(await saveReport(page)).toBe('saved');
      await screenshot(page, 'save-1-sr-saved');
      const posts = calls.filter((c) => c.method === 'POST');
      expect(posts.map((c) => c.status)).toEqual([200]);
      expect(await srSeries()).toHaveLength(1);

      await page.reload({ timeout: 30_000 });
      await signInIfAsked(page);
      await page.waitForFunction(
        () =>
          (
            globalThis as unknown as {
              services: { displaySetService: { getActiveDisplaySets(): { Modality?: string }[] } };
            }
          ).services.displaySetService
            .getActiveDisplaySets()
            .some((d) => d.Modality === 'SR'),
        undefined,
        { timeout: 30_000 },
      );
      await screenshot(page, 'save-2-after-reload');
    } catch (err) {
      console.log(
        `${page.url()}\n${logs.join('\n')}\n${calls.map((x) => `${x.method} ${x.status} ${x.url}`).join('\n')}`,
      );
      await screenshot(page, 'save-failed').catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });

  test('a read-only viewer link: refused, and OHIF shows why', async () => {
    const res = await f.app.inject({ url: `/api/v1/dicom/viewer-url/${radOrder}`, headers: dr.auth });
    expect(res.statusCode).toBe(200);
    const page = await browser.newPage({ viewport: VIEWPORT });
    const calls: DicomWebCall[] = recordDicomWeb(page);
    try {
      await page.goto((res.json() as { viewer_url: string }).viewer_url, { timeout: 30_000 });
      await waitForDrawnImage(page, RENDER_TIMEOUT_MS);
      const before = (await srSeries()).length;
      await drawLength(page);
      const result = await saveReport(page);
      // OHIF's own error is dicomweb-client's generic one.
      expect(result).toBe('failed: request failed');
      const alert = page.getByTestId('ehr-save-error');
      await alert.waitFor({ timeout: 15_000 });
      // The viewer token is a credential only for reads of its study: the STOW is refused before the pipeline (401).
      expect(await alert.textContent()).toMatch(/Not saved \(401\): this session may view this study but not save/);
      await screenshot(page, 'save-3-refused');
      expect(calls.filter((c) => c.method === 'POST').map((c) => c.status)).toEqual([401]);
      expect(await srSeries()).toHaveLength(before);
    } finally {
      await page.close();
    }
  });
});
