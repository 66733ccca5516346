/**
 * String search normalisation: FHIR string search matches "ignoring case and accents"
 * (https://hl7.org/fhir/R4/search.html#string). Both indexed values and search values go through this.
 */
export function normalizeString(value: string): string {
  return value.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().trim();
}

/** Escapes LIKE metacharacters so that user text is matched literally (with `ESCAPE '\'`). */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** PostgreSQL text cannot hold NUL: a value containing it can never match stored data. */
export function hasNul(value: string): boolean {
  return value.includes('\u0000');
}

/**
 * Splits a search parameter value on unescaped commas (OR semantics) and unescapes `\,` `\|` `\$` `\\`
 * (https://hl7.org/fhir/R4/search.html#escaping). `|` splitting for tokens is done by {@link splitToken}.
 */
export function splitOr(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      cur += c + value[i + 1];
      i++;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unescapeText(value: string): string {
  return value.replace(/\\([\\,|$])/g, '$1');
}

/** Unescapes a single (already OR-split) value. */
export function unescapeValue(value: string): string {
  return unescapeText(value);
}

/** A token search value: `code`, `system|code`, `|code` (no system), `system|` (any code in system). */
export interface TokenValue {
  /** undefined: any system; null: no system. */
  system: string | null | undefined;
  /** undefined: any code. */
  code: string | undefined;
}

export function splitToken(raw: string): TokenValue {
  let bar = -1;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === '|') {
      bar = i;
      break;
    }
  }
  if (bar < 0) return { system: undefined, code: unescapeText(raw) };
  const system = unescapeText(raw.slice(0, bar));
  const code = unescapeText(raw.slice(bar + 1));
  return { system: system === '' ? null : system, code: code === '' ? undefined : code };
}
