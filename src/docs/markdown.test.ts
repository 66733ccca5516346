import { describe, expect, test } from 'vitest';
import { fencedBlocks, headingAnchors, relativeLinks, walkthroughSteps } from './markdown.ts';

describe('fencedBlocks', () => {
  test.each([
    { name: 'none', md: 'text\n', want: [] },
    {
      name: 'backticks with info',
      md: 'a\n```sh walkthrough\nls\n```\n',
      want: [{ info: 'sh walkthrough', lines: ['ls'], line: 2 }],
    },
    { name: 'tildes, no info', md: '~~~\nx\ny\n~~~\n', want: [{ info: '', lines: ['x', 'y'], line: 1 }] },
    {
      name: 'a longer fence holds a shorter one',
      md: '````md\n```\n````\n',
      want: [{ info: 'md', lines: ['```'], line: 1 }],
    },
  ])('$name', ({ md, want }) => {
    expect(fencedBlocks(md)).toEqual(want);
  });
});

describe('headingAnchors', () => {
  test.each([
    { name: 'plain', md: '# Quick start', want: ['quick-start'] },
    { name: 'punctuation dropped', md: '## DICOMweb (QIDO-RS / WADO-RS)', want: ['dicomweb-qido-rs--wado-rs'] },
    { name: 'code span', md: '### The queue: `/api/v1/x`', want: ['the-queue-apiv1x'] },
    { name: 'repeated headings numbered', md: '## Tests\n## Tests', want: ['tests', 'tests-1'] },
    { name: 'not inside code blocks', md: '```sh\n# a comment\n```\n## Real', want: ['real'] },
    { name: 'link text only', md: '## See [FHIR](https://hl7.org)', want: ['see-fhir'] },
  ])('$name', ({ md, want }) => {
    expect([...headingAnchors(md)]).toEqual(want);
  });
});

describe('relativeLinks', () => {
  test.each([
    { name: 'relative file', md: 'see [ops](docs/operations.md).', want: ['docs/operations.md'] },
    { name: 'image', md: '![x](docs/screenshots/a.png)', want: ['docs/screenshots/a.png'] },
    { name: 'with anchor', md: '[a](fhir.md#search)', want: ['fhir.md#search'] },
    { name: 'anchor only', md: '[a](#cli)', want: ['#cli'] },
    { name: 'absolute URLs skipped', md: '[a](https://x.org) [m](mailto:a@b)', want: [] },
    { name: 'title after the target', md: '[a](b.md "Title")', want: ['b.md'] },
    { name: 'code spans and blocks skipped', md: '`[a](x.md)`\n```\n[b](y.md)\n```', want: [] },
  ])('$name', ({ md, want }) => {
    expect(relativeLinks(md).map((l) => l.target)).toEqual(want);
  });
});

describe('walkthroughSteps', () => {
  test.each([
    { name: 'other blocks ignored', md: '```sh\nls\n```', want: [] },
    {
      name: 'commands with and without a promised output',
      md: '```sh walkthrough\n# a comment\nexport A=1\n\ncurl -s x | jq .status   # → ok\n```',
      want: [
        { command: 'export A=1', expect: undefined, line: 3 },
        { command: 'curl -s x | jq .status', expect: 'ok', line: 5 },
      ],
    },
    {
      name: 'continuation lines joined',
      md: 'text\n```sh walkthrough\ncurl -s \\\n  -d "a b" url \\\n  | jq .n   # → 1\n```',
      want: [{ command: 'curl -s   -d "a b" url | jq .n', expect: '1', line: 3 }],
    },
    {
      name: 'several blocks in order',
      md: '```sh walkthrough\none\n```\nprose\n```bash walkthrough\ntwo\n```',
      want: [
        { command: 'one', expect: undefined, line: 2 },
        { command: 'two', expect: undefined, line: 6 },
      ],
    },
  ])('$name', ({ md, want }) => {
    expect(walkthroughSteps(md)).toEqual(want);
  });
});
