/**
 * The API reference at /docs renders in a real browser from local files only: the page, Scalar's script and the
 * OpenAPI document all come from the facade, and the operations appear.
 */
import type { Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { testApp } from '../helpers/app.ts';
import { launchChromium } from './helpers/chromium.ts';

let app: FastifyInstance;
let browser: Browser;
let base: string;

beforeAll(async () => {
  app = await testApp();
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await app.close();
});

test('renders the operations from /openapi.json, loading nothing from elsewhere', async () => {
  const page = await browser.newPage();
  const foreign: string[] = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
  });
  await page.route(
    (url) => !url.href.startsWith(base),
    (route) => route.abort(),
  );
  await page.goto(`${base}/docs/`);
  await page.getByText('Readiness').first().waitFor({ timeout: 30_000 });
  for (const tag of ['authorization', 'imaging', 'operations']) {
    expect(await page.getByText(tag, { exact: true }).count()).toBeGreaterThan(0);
  }
  expect(await page.getByText('Deploy', { exact: false }).count()).toBe(0);
  await page.screenshot({ path: 'test-artifacts/docs.png' }).catch(() => undefined);
  expect(foreign).toEqual([]);
  await page.close();
});
