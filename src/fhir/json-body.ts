/**
 * The FHIR JSON request body, read strictly before any deep work (https://hl7.org/fhir/R4/json.html):
 *  - the bytes must be valid UTF-8 (a strict decoder: nothing is silently replaced by U+FFFD);
 *  - objects and arrays may nest at most `maxDepth` levels, checked on the text before parsing, so that nothing
 *    recursive (structuredClone, validation, FHIRPath) ever sees a deeper value;
 *  - no string and no element name may contain NUL or an unpaired surrogate (PostgreSQL cannot store either);
 *  - `__proto__`, `constructor` and `prototype` are refused as element names: FHIR has no such elements, and they
 *    must never reach code that could treat them as an object's prototype.
 * Every refusal is a {@link BadRequestError} naming the element where one can be named.
 */
import { BadRequestError } from './errors.ts';

/** Default of `fhirMaxJsonDepth` (config). */
export const DEFAULT_MAX_DEPTH = 64;

/** Element names that are never FHIR elements and that JavaScript treats specially. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The body as text; invalid UTF-8 is a 400 (https://hl7.org/fhir/R4/json.html: JSON is UTF-8). */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new BadRequestError('the body is not valid UTF-8');
  }
}

/**
 * Throws when objects/arrays in a JSON text nest deeper than `maxDepth`. A linear scan that skips strings, so a
 * deep document is refused before JSON.parse and before anything recursive runs.
 */
export function assertJsonDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > maxDepth) throw new BadRequestError(`the JSON body nests deeper than ${maxDepth} levels`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

function refuse(message: string, path: string): never {
  throw new BadRequestError(message, [path], 'structure');
}

/**
 * Walks a parsed value (at most `maxDepth` deep) and refuses NUL in strings and element names, forbidden element
 * names, and nesting deeper than `maxDepth`. `path` is the FHIRPath-like location of `value` (e.g. `Patient`).
 */
export function assertSafeContent(value: unknown, path: string, maxDepth: number, depth = 0): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) refuse('NUL characters are not allowed', path);
    // A `\uD800` escape parses to a lone surrogate, which is not Unicode text and which jsonb refuses.
    if (!value.isWellFormed()) refuse('unpaired surrogate escapes are not allowed', path);
    return;
  }
  if (!value || typeof value !== 'object') return;
  if (depth >= maxDepth) refuse(`the resource nests deeper than ${maxDepth} levels`, path);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) assertSafeContent(value[i], `${path}[${i}]`, maxDepth, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.includes('\u0000') || !k.isWellFormed()) {
      refuse('NUL characters and unpaired surrogates are not allowed in element names', path);
    }
    if (FORBIDDEN_KEYS.has(k)) refuse(`unknown element "${k}"`, `${path}.${k}`);
    assertSafeContent(v, `${path}.${k}`, maxDepth, depth + 1);
  }
}

/** The root of element paths in a body: its resourceType when it has one. */
function rootPath(value: unknown): string {
  if (Array.isArray(value)) return '';
  const rt = value && typeof value === 'object' ? (value as { resourceType?: unknown }).resourceType : undefined;
  return typeof rt === 'string' && /^[A-Za-z]{1,64}$/.test(rt) ? rt : '$';
}

/**
 * Parses a FHIR JSON (or JSON Patch) request body: strict UTF-8, depth limit, JSON syntax, then
 * {@link assertSafeContent}. An empty body is `undefined`.
 */
export function parseFhirJson(bytes: Uint8Array, maxDepth: number): unknown {
  const text = decodeUtf8(bytes);
  if (text.trim() === '') return undefined;
  assertJsonDepth(text, maxDepth);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError('malformed JSON body');
  }
  assertSafeContent(value, rootPath(value), maxDepth);
  return value;
}
