import type { Resource } from '@medplum/fhirtypes';
import { BadRequestError } from './errors.ts';
import type { IndexValues } from './index-values.ts';

/** Default of `fhirMaxIndexedValueLength` (config): 512 characters of up to 4 UTF-8 bytes fit a B-tree entry. */
export const DEFAULT_MAX_INDEXED_LENGTH = 512;

/** Every string in `value` longer than `max` characters, with its FHIRPath-like location. */
function longStrings(value: unknown, path: string, max: number, out: [string, string][] = []): [string, string][] {
  if (typeof value === 'string') {
    if (value.length > max) out.push([path, value]);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      longStrings(v, `${path}[${i}]`, max, out);
    });
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) longStrings(v, `${path}.${k}`, max, out);
  }
  return out;
}

/**
 * Search index values are bounded: a B-tree entry in PostgreSQL holds at most ~2.7 kB, and no search needs a longer
 * key. An element that a search parameter indexes and that is longer than `max` characters is a 400 naming the
 * element (e.g. `Patient.name[0].family`), before anything is written. Long elements that no parameter indexes
 * (narrative, notes, attachments) are not limited here.
 */
export function assertIndexable(type: string, resource: Resource, index: IndexValues, max: number): void {
  const tooLong = new Map<string, string>();
  for (const t of index.tokens) {
    if (t.value.length > max) tooLong.set(t.value, t.code);
    if (t.system && t.system.length > max) tooLong.set(t.system, t.code);
  }
  for (const s of index.strings) if (s.exact.length > max) tooLong.set(s.exact, s.code);
  if (tooLong.size === 0) return;
  const paths = longStrings(resource, type, max).flatMap(([path, v]) => (tooLong.has(v) ? [path] : []));
  const params = [...new Set(tooLong.values())].join(', ');
  throw new BadRequestError(
    `${paths.length ? paths.join(', ') : type} is longer than ${max} characters, the limit for values indexed for search (${params})`,
    paths.length ? paths : [type],
    'too-long',
  );
}
