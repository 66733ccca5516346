import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureUser } from '../helpers/auth.ts';
import { type ListeningFacade, launchChromium, startFacade } from './helpers/browser.ts';
import { docShot, signIn } from './helpers/web-app.ts';

/**
 * The web app's "Connected apps" screen (`/app/authorizations`, the SMART `management_endpoint`) in Debian's chromium
 * against the real facade: a user signed in in two browsers sees both sessions as grants of the web app, revokes the
 * other one after confirming, and that browser's token is then refused. Every wait is bounded.
 */

const PASSWORD = 'web-app-test-password';
let f: ListeningFacade;
let browser: Browser;
const pages: Page[] = [];

beforeAll(async () => {
  f = await startFacade();
  browser = await launchChromium();
  await ensureUser(f.app, { username: 'web-apps-doctor', roles: ['doctor'], password: PASSWORD });
}, 120_000);

afterAll(async () => {
  for (const p of pages) await p.context().close();
  await browser?.close();
  await f?.app.close();
});

/** What the page's own session gets from `/api/v1/me` with its token (fhirclient keeps it in sessionStorage). */
const meStatus = (page: Page) =>
  page.evaluate(async () => {
    const key = JSON.parse(sessionStorage.getItem('SMART_KEY') ?? '""') as string;
    const state = JSON.parse(sessionStorage.getItem(key) ?? '{}') as { tokenResponse?: { access_token?: string } };
    const res = await fetch('/api/v1/me', {
      headers: { authorization: `Bearer ${state.tokenResponse?.access_token}` },
    });
    return res.status;
  });

describe('Connected apps', () => {
  test('lists the sessions of the user and revokes one after confirming', async () => {
    const other = await signIn(browser, f.baseUrl, 'web-apps-doctor', PASSWORD);
    const page = await signIn(browser, f.baseUrl, 'web-apps-doctor', PASSWORD);
    pages.push(other, page);
    expect(await meStatus(other)).toBe(200);

    await page.getByRole('link', { name: 'Connected apps' }).click();
    const table = page.getByRole('table', { name: 'Connected apps' });
    await table.waitFor({ timeout: 30_000 });
    const rows = table.locator('tbody tr');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(2);
    const otherRow = rows.filter({ hasNotText: 'this session' });
    expect(await otherRow.count()).toBe(1);
    await docShot(page, 'web-connected-apps');

    await otherRow.getByRole('button', { name: /^Revoke / }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect(await rows.count()).toBe(2);
    await otherRow.getByRole('button', { name: /^Revoke / }).click();
    await page.getByRole('button', { name: 'Yes, revoke' }).click();
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(1);
    expect(await rows.first().textContent()).toContain('this session');

    expect(await meStatus(other)).toBe(401);
    expect(await meStatus(page)).toBe(200);
  }, 120_000);
});
