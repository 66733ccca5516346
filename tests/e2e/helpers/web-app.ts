import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

/**
 * Helpers for the staff web app's browser tests: sign in through the built-in authorization server's login page
 * (authorization code + PKCE, as the app's users do) and keep screenshots of each screen for docs/screenshots/.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Where the screenshots go: test-artifacts/e2e/web-app/, and docs/screenshots/ with EHR_UPDATE_SCREENSHOTS=1. */
export const SHOTS = join(ROOT, 'test-artifacts', 'e2e', 'web-app');
export const DOC_SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

export const VIEWPORT = { width: 1280, height: 800 };

/** Opens /app/ in a fresh browser context and signs in (screenshot of the login page as `shot`); resolves on the first screen after sign-in. */
export async function signIn(
  browser: Browser,
  baseUrl: string,
  username: string,
  password: string,
  shot?: string,
): Promise<Page> {
  const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${baseUrl}/app/`, { timeout: 30_000 });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('input[name=username]', { timeout: 30_000 });
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  if (shot) await docShot(page, shot);
  await page.click('button[type=submit]');
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 30_000 });
  return page;
}

/**
 * A screenshot of the visible screen as <name>.png: into test-artifacts/ on every run, and into docs/screenshots/
 * (the docs and the README show them) only when EHR_UPDATE_SCREENSHOTS=1, so a test run leaves the work tree clean.
 */
export async function docShot(page: Page, name: string): Promise<void> {
  const dir = process.env['EHR_UPDATE_SCREENSHOTS'] === '1' ? DOC_SCREENSHOTS : SHOTS;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false, scale: 'css' });
}

/**
 * A zip of DICOM media as a CD carries them: DICOM/IM000001 and the DICOMDIR that dcmtk's dcmmkdir writes for it
 * (PS3.10 general-purpose profile), zipped with Python's zipfile. Returns the zip's path.
 */
export function zippedMedia(work: string, instance: Buffer): string {
  const media = join(work, 'media');
  mkdirSync(join(media, 'DICOM'), { recursive: true });
  writeFileSync(join(media, 'DICOM', 'IM000001'), instance);
  execFileSync('dcmmkdir', ['--general-purpose', '+id', '.', '+r', 'DICOM/IM000001'], { cwd: media });
  const zip = join(work, 'media.zip');
  execFileSync('python3', ['-m', 'zipfile', '-c', zip, 'DICOMDIR', 'DICOM'], { cwd: media });
  return zip;
}

/**
 * Starts an upload with `start` and holds its first STOW-RS request in the network until `during` has run (e.g. a
 * click on Pause or Cancel), then lets it go on. Later requests pass untouched.
 */
export async function whileFirstStowHeld(
  page: Page,
  start: () => Promise<void>,
  during: () => Promise<void>,
): Promise<void> {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let first = true;
  await page.route('**/dicom-web/studies', async (route) => {
    if (!first) return route.continue();
    first = false;
    await gate;
    await route.continue().catch(() => undefined);
  });
  await start();
  await during();
  release();
}
