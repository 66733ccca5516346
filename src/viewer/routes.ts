/**
 * Which browser paths belong to the OHIF single-page app, and which never do. Pure.
 *
 * OHIF is built for PUBLIC_URL "/", so its files and its client-side routes (/, /viewer, /callback, ...) live at the
 * root of the facade's origin, next to the API. The API prefixes below always win: a request under one of them is
 * never answered with OHIF's index.html, even when no API route matches it (it gets the API's own 404 instead).
 */

/** Path prefixes owned by the API (and the health probes): never served by the viewer plugin. */
export const RESERVED_PREFIXES: readonly string[] = [
  '/fhir',
  '/dicom-web',
  '/auth',
  '/api',
  '/healthz',
  '/readyz',
  '/.well-known',
];

/** True when `path` (no query string) is one of the API prefixes or below one. */
export function isReserved(path: string): boolean {
  const p = path.toLowerCase();
  return RESERVED_PREFIXES.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
}

/**
 * OHIF 3.13's client-side routes that get index.html (SPA fallback), each also with sub-paths (`/viewer/dicomweb`):
 * the modes shipped in the build (minus microscopy, whose extension set-up drops, and the dev/test modes), the
 * "not found" pages OHIF navigates to, and the OpenID Connect callback/login/logout pages of its oidc client.
 * Explicit routes rather than a catch-all, so that an unknown path still gets the facade's normal 404.
 */
export const SPA_ROUTES: readonly string[] = [
  '/viewer',
  '/segmentation',
  '/tmtv',
  '/dynamic-volume',
  '/usAnnotation',
  '/basic',
  '/notfoundserver',
  '/notfoundstudy',
  '/callback',
  '/login',
  '/logout',
];

/**
 * Cache policy for files of the OHIF build: content-hashed bundles and wasm never change under their name; everything
 * else (index.html, app-config.js, the service worker, manifests) must be revalidated so that a new build or
 * configuration is picked up at once.
 */
export function cacheControlFor(path: string): string {
  const name = path.split('/').at(-1) ?? '';
  if (/\.[0-9a-f]{16}\.(js|css)$/.test(name) || /^[0-9a-f]{16}\.(wasm|woff2?)$/.test(name)) {
    return 'public, max-age=31536000, immutable';
  }
  return 'no-cache';
}
