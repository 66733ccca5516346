/**
 * Response headers of the staff web app (pure). The Content Security Policy allows only the app's own origin: no
 * inline or eval'd script, no inline style sheets, no plugins, no framing (CSP Level 3, https://www.w3.org/TR/CSP3/).
 * `blob:` images and workers: the upload screen previews nothing but dcmjs may use blobs; `data:` images for icons.
 */
export const WEB_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on the app's HTML page (index.html for every client-side route). */
export const WEB_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': WEB_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // The SMART callback URL carries an authorization code: no request may repeat it in a Referer.
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-cache',
};

/** Vite names built assets `name-<hash>.ext` under assets/: those never change under their name. */
export function webCacheControl(file: string): string {
  return /^assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache';
}

/** What a path under /app/ answers: a file of the build, or the app's index.html (client-side route), or 404. */
export function resolveWebPath(
  path: string,
  files: ReadonlySet<string>,
): { kind: 'file'; file: string } | { kind: 'index' } | { kind: 'none' } {
  const rest = path.replace(/^\/app\/?/, '');
  if (rest === '' || rest === 'index.html') return { kind: 'index' };
  if (files.has(rest)) return { kind: 'file', file: rest };
  // A client-side route has no file extension in its last segment; a missing asset is a plain 404.
  const last = rest.split('/').at(-1) ?? '';
  return last.includes('.') ? { kind: 'none' } : { kind: 'index' };
}
