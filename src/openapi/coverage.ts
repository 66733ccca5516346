/**
 * Which routes the OpenAPI document covers (pure). FHIR and DICOMweb routes are described by their own standards'
 * documents; the viewer's files, the staff web app and the documentation pages are not API.
 */

/** Path prefixes of the documented API. */
export const DOCUMENTED_PREFIXES: readonly string[] = ['/api/', '/auth/', '/healthz', '/readyz', '/metrics'];

/** Path prefixes left out on purpose, each described elsewhere. */
export const UNDOCUMENTED_PREFIXES: readonly string[] = [
  '/fhir', // the CapabilityStatement at /fhir/metadata
  '/dicom-web', // the conformance page at /docs/dicomweb
  '/docs', // the documentation itself
  '/openapi.json',
  '/app', // the staff web app
];

function under(url: string, prefix: string): boolean {
  return prefix.endsWith('/') ? url.startsWith(prefix) : url === prefix || url.startsWith(`${prefix}/`);
}

/** Is the route at `url` (as registered) part of the OpenAPI document? */
export function documentedRoute(url: string, config?: Record<string, unknown>): boolean {
  if (config?.['ohif'] !== undefined) return false;
  return DOCUMENTED_PREFIXES.some((p) => under(url, p));
}

/** Is the route left out for a stated reason (an undocumented prefix or the viewer's files)? */
export function knownUndocumented(url: string, config?: Record<string, unknown>): boolean {
  return config?.['ohif'] !== undefined || UNDOCUMENTED_PREFIXES.some((p) => under(url, p));
}

/** The tag of a route without one: `/api/v1/<area>/…` → `<area>`, `/auth/…` → `authorization`, else `operations`. */
export function defaultTag(url: string): string {
  const api = /^\/api\/v\d+\/([^/]+)/.exec(url);
  if (api) return api[1]!;
  return url.startsWith('/auth/') ? 'authorization' : 'operations';
}
