import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { buildApp } from '../../../src/app.ts';
import type { Config } from '../../../src/config/spec.ts';
import { freePort } from '../../../src/stack/process.ts';
import { testConfig } from '../../helpers/app.ts';
import { CHROMIUM, DRAWN_IMAGE, launchChromium } from './chromium.ts';

export { CHROMIUM, launchChromium };

/**
 * Real-browser test plumbing: Debian's chromium driven by playwright-core (`npx playwright install` cannot work on
 * these machines), the facade listening on a free port with its public base URL set to it (OHIF, the login pages and
 * the tokens must agree on the origin), and the checks a person would make by looking at the screen.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Screenshots land here (git-ignored), where a person can look at them after a CI run. */
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'e2e');

export interface ListeningFacade {
  app: FastifyInstance;
  baseUrl: string;
  config: Config;
}

/** The real facade against the throwaway stack, listening on 127.0.0.1 with a matching public base URL. */
export async function startFacade(overrides: Partial<Config> = {}): Promise<ListeningFacade> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const config = testConfig({ publicBaseUrl: baseUrl, ...overrides });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  return { app, baseUrl, config };
}

export interface DicomWebCall {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly authorization: string | undefined;
}

/** Records every /dicom-web response the page receives (the network log the viewer tests assert on). */
export function recordDicomWeb(page: Page): DicomWebCall[] {
  const calls: DicomWebCall[] = [];
  page.on('response', (res) => {
    const req = res.request();
    if (!new URL(req.url()).pathname.startsWith('/dicom-web')) return;
    calls.push({
      method: req.method(),
      url: req.url(),
      status: res.status(),
      authorization: req.headers()['authorization'],
    });
  });
  return calls;
}

export async function imageDrawn(page: Page): Promise<boolean> {
  return (await page.evaluate(DRAWN_IMAGE)) === true;
}

/** Waits (bounded) until a viewport shows non-black pixels; throws on time-out. */
export async function waitForDrawnImage(page: Page, timeoutMs = 60_000): Promise<void> {
  await page.waitForFunction(DRAWN_IMAGE, undefined, { timeout: timeoutMs, polling: 250 });
}

/** Saves a full-page screenshot under test-artifacts/e2e/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** Collects the page's console errors and uncaught exceptions (printed when a test fails, to tell why). */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') lines.push(`console.error ${m.text().slice(0, 300)}`);
  });
  page.on('pageerror', (e) => lines.push(`pageerror ${e.message.slice(0, 300)}`));
  return lines;
}
