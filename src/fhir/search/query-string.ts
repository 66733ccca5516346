/**
 * Strict reading of a FHIR query string or form body (https://hl7.org/fhir/R4/search.html#escaping,
 * application/x-www-form-urlencoded per the WHATWG URL standard): every `%` must start a two-digit hex escape, the
 * decoded bytes must be UTF-8, and no name or value may contain NUL or exceed the configured length. The usual
 * parsers are lenient (a bad escape stays as text, invalid UTF-8 becomes U+FFFD); this check runs first so that such
 * input is a 400 naming the parameter instead of a silently different search.
 */
import { BadRequestError } from '../errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Percent-decodes one component strictly (`+` is a space); undefined when an escape or the UTF-8 is invalid. */
export function strictDecode(component: string): string | undefined {
  const s = component.replace(/\+/g, ' ');
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      const ch = String.fromCodePoint(s.codePointAt(i) ?? c);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length - 1;
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

/** Display name of a parameter in an error: decoded when possible, else the raw text (shortened). */
function shown(name: string): string {
  return (strictDecode(name) ?? name).replaceAll('\u0000', '\\0').slice(0, 64);
}

/**
 * Throws a 400 naming the parameter when a raw query string (without `?`) has a bad escape, invalid UTF-8, NUL,
 * or a name or value longer than `maxValueLength` characters once decoded.
 */
export function assertStrictQuery(raw: string, maxValueLength: number): void {
  if (raw === '') return;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? '' : pair.slice(eq + 1);
    const name = strictDecode(rawName);
    if (name === undefined) throw new BadRequestError(`invalid percent-encoding or UTF-8 in a parameter name`);
    const where = [shown(rawName)];
    if (name.includes('\u0000')) throw new BadRequestError('NUL is not allowed in a parameter name', where);
    if (name.length > 256) throw new BadRequestError('parameter name too long', where);
    const value = strictDecode(rawValue);
    if (value === undefined)
      throw new BadRequestError(`invalid percent-encoding or UTF-8 in the value of ${where[0]}`, where);
    if (value.includes('\u0000')) throw new BadRequestError(`NUL is not allowed in the value of ${where[0]}`, where);
    if (value.length > maxValueLength) {
      throw new BadRequestError(`the value of ${where[0]} is longer than ${maxValueLength} characters`, where);
    }
  }
}
