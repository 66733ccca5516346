/**
 * OHIF's time to first drawn image for a 40-instance study: the same OHIF build and configuration served by the
 * facade, and by a plain auth-injecting proxy in front of Orthanc (bench/auth-proxy.ts). Debian's chromium driven by
 * playwright-core (as in tests/e2e), a fresh browser context (empty cache) per load, sides alternating per repetition
 * and each side given a different study of the same shape.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { type Ctx, paired, type Result } from '../context.ts';
import { startPlainProxy } from '../plain-proxy.ts';
import type { Sample } from '../stats.ts';
import { DRAWN_IMAGE, launchChromium } from '../../tests/e2e/helpers/chromium.ts';

/** One request of a load, in ms since the navigation started (BENCH_OHIF_TRACE). */
interface TracedRequest {
  url: string;
  status: number;
  start: number;
  /** Response headers received, and the last byte (-1 when failed or unfinished). */
  ttfb: number;
  end: number;
  bytes: number;
}

/** Records every request of a page with Chromium's own timings, for `BENCH_OHIF_TRACE=<dir>`. */
function traceRequests(page: Page, t0Epoch: number): TracedRequest[] {
  const out: TracedRequest[] = [];
  page.on('requestfinished', (req) => {
    const t = req.timing();
    const start = t.startTime - t0Epoch;
    const traced: TracedRequest = {
      url: req.url(),
      status: 0,
      start,
      ttfb: t.responseStart >= 0 ? start + t.responseStart : -1,
      end: t.responseEnd >= 0 ? start + t.responseEnd : -1,
      bytes: -1,
    };
    out.push(traced);
    // Status and size need more round trips to the browser, which may close meanwhile: filled in when they come.
    void Promise.all([req.response(), req.sizes()])
      .then(([res, sizes]) => {
        traced.status = res?.status() ?? 0;
        traced.bytes = sizes.responseBodySize;
      })
      .catch(() => undefined);
  });
  return out;
}

let traced = 0;

async function timeToFirstImage(
  browser: Browser,
  url: string,
  side: string,
  traceDir: string | undefined,
): Promise<Sample> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const requests = traceDir ? traceRequests(page, Date.now()) : [];
  const t0 = performance.now();
  let ok = true;
  try {
    await page.goto(url, { timeout: 60_000 });
    await page.waitForFunction(DRAWN_IMAGE, undefined, { timeout: 60_000, polling: 'raf' });
  } catch {
    ok = false;
  }
  const ms = performance.now() - t0;
  if (traceDir) {
    mkdirSync(traceDir, { recursive: true });
    writeFileSync(join(traceDir, `${++traced}-${side}.json`), JSON.stringify({ url, ms, ok, requests }, null, 1));
  }
  await context.close();
  return {
    rate: ok ? 1000 / ms : 0,
    mbPerS: 0,
    p50: ok ? ms : 60_000,
    p99: ok ? ms : 60_000,
    errors: ok ? 0 : 1,
    count: 1,
  };
}

export async function ohifWorkloads(ctx: Ctx): Promise<Result[]> {
  const proxy = await startPlainProxy(ctx);
  const browser = await launchChromium();
  try {
    const studies = ctx.data.patients.flatMap((p) => p.studies.map((s) => s.studyUid));
    const token = (await ctx.facadeAs('doctor')).headers['authorization']?.replace(/^Bearer /, '') ?? '';
    let load = 0;
    const next = () => studies[load++ % studies.length] as string;
    const trace = ctx.cfg.ohifTraceDir;
    const direct = () =>
      timeToFirstImage(browser, `${proxy.base}/viewer?StudyInstanceUIDs=${next()}#token=bench`, 'direct', trace);
    const facade = () =>
      timeToFirstImage(
        browser,
        `${ctx.facade.baseUrl}/viewer?StudyInstanceUIDs=${next()}#token=${token}`,
        'facade',
        trace,
      );
    return [
      await paired(ctx, {
        id: 'ohif-first-image',
        group: 'ohif',
        label: 'OHIF 3.13: open a 40-instance study to the first drawn image',
        aLabel: 'Orthanc behind plain auth proxy',
        bLabel: 'facade',
        unit: 'loads/s',
        reps: ctx.cfg.ohifReps,
        a: direct,
        b: facade,
        warmup: { a: direct, b: facade },
        target: { metric: 'p50', min: 1, text: '≤ direct (time)' },
        note: 'p50 columns are the time to first image in ms (one load per repetition)',
      }),
    ];
  } finally {
    await browser.close();
    proxy.child.kill('SIGTERM');
  }
}
