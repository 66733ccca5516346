/**
 * The manual stays usable: README.md is a front door of at most 16 KB, shell blocks run Node only through make or
 * bin/ehr, and every relative link in README.md and docs/*.md reaches a file of the repository (and a heading, when it
 * names an anchor in a Markdown file).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { fencedBlocks, headingAnchors, relativeLinks, walkthroughSteps } from './markdown.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README_MAX_BYTES = 16 * 1024;
/** A command line that runs Node directly: the system's Node may be too old, `make` and `bin/ehr` use `.tools/node`. */
const BARE_NODE = /(^|[\s|;&(])(node|npx|tsx)\s/;

const documents = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f)),
];

const anchorsOf = new Map<string, Set<string>>();
function anchors(file: string): Set<string> {
  const known = anchorsOf.get(file);
  if (known) return known;
  const set = headingAnchors(readFileSync(file, 'utf8'));
  anchorsOf.set(file, set);
  return set;
}

/** What is wrong with one link of `file` (undefined: nothing). */
function brokenLink(file: string, target: string): string | undefined {
  const [path = '', anchor] = target.split('#');
  const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
  if (!dest.startsWith(ROOT)) return 'leaves the repository';
  if (!existsSync(dest)) return 'no such file';
  if (anchor && dest.endsWith('.md') && statSync(dest).isFile() && !anchors(dest).has(anchor)) {
    return `no heading #${anchor}`;
  }
  return undefined;
}

describe('README.md', () => {
  test(`is a front door of at most ${README_MAX_BYTES} bytes`, () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThanOrEqual(README_MAX_BYTES);
  });

  test('has a walkthrough whose commands run through bin/ehr or make, never a bare node', () => {
    const steps = walkthroughSteps(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(steps.length).toBeGreaterThan(5);
    expect(steps.filter((s) => BARE_NODE.test(s.command))).toEqual([]);
  });

  test('links the docs index', () => {
    expect(relativeLinks(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((l) => l.target)).toContain(
      'docs/README.md',
    );
  });
});

describe('docs/README.md', () => {
  test('lists every page of docs/', () => {
    const index = join(ROOT, 'docs', 'README.md');
    const listed = new Set(relativeLinks(readFileSync(index, 'utf8')).map((l) => l.target.split('#')[0]));
    const pages = documents.filter((f) => f.startsWith(join(ROOT, 'docs')) && f !== index);
    expect(pages.map((f) => relative(join(ROOT, 'docs'), f)).filter((p) => !listed.has(p))).toEqual([]);
  });
});

describe.each(documents.map((f) => ({ name: relative(ROOT, f), file: f })))('$name', ({ file }) => {
  test('its shell blocks run Node only through make or bin/ehr', () => {
    const bare = fencedBlocks(readFileSync(file, 'utf8'))
      .filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.info.split(/\s+/)[0] ?? ''))
      .flatMap((b) => b.lines.map((text, i) => ({ line: b.line + 1 + i, text })))
      .filter((l) => !l.text.trim().startsWith('#') && BARE_NODE.test(l.text.replace(/#.*$/, '')))
      .map((l) => `line ${l.line}: ${l.text.trim()}`);
    expect(bare).toEqual([]);
  });

  test('every relative link reaches a file (and its heading)', () => {
    const broken = relativeLinks(readFileSync(file, 'utf8'))
      .map((l) => ({ ...l, problem: brokenLink(file, l.target) }))
      .filter((l) => l.problem !== undefined)
      .map((l) => `line ${l.line}: ${l.target}: ${l.problem}`);
    expect(broken).toEqual([]);
  });
});
