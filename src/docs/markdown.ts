/**
 * Reading the project's Markdown manual (README.md, docs/*.md) as data, for the tests that keep it honest: relative
 * links and their anchors, and the walkthrough's shell commands. Pure: text in, values out.
 *
 * Anchors follow GitHub's rendering of headings (github-slugger: lower case, punctuation dropped, spaces to hyphens,
 * `-1`, `-2`… for repeated headings), which is where readers follow them.
 */
import GithubSlugger from 'github-slugger';

/** A fenced code block: its info string (after the backticks) and its lines. */
export interface FencedBlock {
  info: string;
  lines: string[];
  /** 1-based line of the opening fence. */
  line: number;
}

/** Fenced code blocks (``` or ~~~, CommonMark §4.5) in document order. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  let open: { fence: string; block: FencedBlock } | undefined;
  markdown.split('\n').forEach((text, i) => {
    if (open) {
      if (text.trim().startsWith(open.fence) && text.trim().replace(/[`~]/g, '') === '') {
        blocks.push(open.block);
        open = undefined;
      } else {
        open.block.lines.push(text);
      }
      return;
    }
    const m = /^ {0,3}(`{3,}|~{3,})\s*(.*)$/.exec(text);
    if (m) open = { fence: m[1]!, block: { info: m[2]!.trim(), lines: [], line: i + 1 } };
  });
  return blocks;
}

/** The text outside fenced code blocks (their lines blanked, so line numbers stay). */
function prose(markdown: string): string[] {
  const lines = markdown.split('\n');
  for (const b of fencedBlocks(markdown)) {
    for (let i = b.line - 1; i <= b.line + b.lines.length && i < lines.length; i++) lines[i] = '';
  }
  return lines;
}

/** Heading text as GitHub renders it before slugging: code spans, links and emphasis reduced to their text. */
function headingText(raw: string): string {
  return raw
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .replace(/\*\*|__/g, '')
    .trim();
}

/** The anchors of a document's headings (ATX `#` headings outside code blocks), as GitHub generates them. */
export function headingAnchors(markdown: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  for (const line of prose(markdown)) {
    const m = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m) anchors.add(slugger.slug(headingText(m[1]!)));
  }
  return anchors;
}

/** A link or image target in a document. */
export interface MarkdownLink {
  /** 1-based line. */
  line: number;
  /** The target as written (path, optional `#anchor`). */
  target: string;
}

/**
 * Relative link and image targets outside code blocks and code spans: `[text](target)` and `![alt](target)`.
 * URLs with a scheme (`https:`, `mailto:`) and protocol-relative ones are left out; `#anchor` alone is kept.
 */
export function relativeLinks(markdown: string): MarkdownLink[] {
  const links: MarkdownLink[] = [];
  prose(markdown).forEach((text, i) => {
    const visible = text.replace(/`[^`]*`/g, '');
    for (const m of visible.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue;
      links.push({ line: i + 1, target });
    }
  });
  return links;
}

/** One command of the walkthrough, with the output it promises. */
export interface WalkthroughStep {
  /** The command as a shell runs it (continuation lines joined, the trailing `# → …` comment removed). */
  command: string;
  /** Text that its output contains, from a trailing `# → text` comment; undefined when it promises none. */
  expect: string | undefined;
  /** 1-based line in the document where the command starts. */
  line: number;
}

/**
 * The commands of the fenced blocks whose info string is `sh walkthrough` (or `bash walkthrough`), in order.
 * A command continues on the next line after a trailing backslash; blank lines and whole-line comments are skipped. A
 * trailing `# → text` comment is the output the reader should see (a part of it).
 */
export function walkthroughSteps(markdown: string): WalkthroughStep[] {
  const steps: WalkthroughStep[] = [];
  for (const block of fencedBlocks(markdown)) {
    const words = block.info.split(/\s+/);
    if (!['sh', 'bash', 'shell'].includes(words[0] ?? '') || !words.includes('walkthrough')) continue;
    let pending: { parts: string[]; line: number } | undefined;
    block.lines.forEach((text, i) => {
      if (!pending && (text.trim() === '' || text.trim().startsWith('#'))) return;
      pending ??= { parts: [], line: block.line + 1 + i };
      if (/\\\s*$/.test(text)) {
        pending.parts.push(text.replace(/\\\s*$/, '').trimEnd());
        return;
      }
      const joined = [...pending.parts, text.trim()].join(' ').trim();
      const m = /^(.*?)\s+# → (.+)$/.exec(joined);
      steps.push({
        command: (m ? m[1]! : joined).trim(),
        expect: m ? m[2]!.trim() : undefined,
        line: pending.line,
      });
      pending = undefined;
    });
  }
  return steps;
}
