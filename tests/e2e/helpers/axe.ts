import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

/**
 * An accessibility audit of what a page shows now, with axe-core (Deque's rules for WCAG 2.x A/AA and best
 * practices). axe's script is handed to the page through the DevTools protocol (page.evaluate), not as a script tag,
 * so the app's strict CSP stays as it is and still reports any violation of its own.
 */

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeFinding {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: readonly string[];
}

/** The serious and critical violations axe finds on the page (each with up to five offending elements). */
/** Runs axe in the page (a script string: the test code has no DOM types) and returns its findings, trimmed. */
const RUN_AXE = `(async () => {
  const r = await window.axe.run(document, { resultTypes: ['violations'] });
  return r.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.map(String).join(' ')),
  }));
})()`;

/** The serious and critical violations axe finds on the page (each with up to five offending elements). */
export async function seriousViolations(page: Page): Promise<AxeFinding[]> {
  if (!(await page.evaluate("typeof window.axe !== 'undefined'"))) await page.evaluate(AXE_SOURCE);
  const found = (await page.evaluate(RUN_AXE)) as AxeFinding[];
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
