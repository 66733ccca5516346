import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium (playwright's own browser downloads cannot work here; see the machine facts). */
export const CHROMIUM = process.env['EHR_CHROMIUM'] ?? '/usr/bin/chromium';

/** Headless Chromium for the e2e tests and the OHIF benchmark; playwright gives every launch a fresh profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * True when a viewport canvas shows a drawn image: enough pixels that are not black. Cornerstone draws each viewport
 * into a 2D canvas (`.cornerstone-canvas`, also with its CPU fallback when WebGL is unavailable). Evaluated in the page
 * as a string: the project's TypeScript has no DOM types.
 */
export const DRAWN_IMAGE = `(() => {
  const canvases = [...document.querySelectorAll('canvas.cornerstone-canvas, .viewport-element canvas')];
  for (const c of canvases) {
    if (!c.width || !c.height) continue;
    const ctx = c.getContext('2d');
    if (!ctx) continue;
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 16) if (d[i] + d[i + 1] + d[i + 2] > 48) lit++;
    if (lit > 200) return true;
  }
  return false;
})()`;
