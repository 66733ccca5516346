import { describe, expect, test } from 'vitest';
import { resolveWebPath, WEB_CSP, webCacheControl } from './headers.ts';

const FILES = new Set(['index.html', 'assets/index-DL7M_EBl.js', 'assets/index-kFEGp_r4.css', 'favicon.svg']);

describe('resolveWebPath', () => {
  test.each([
    ['/app/', { kind: 'index' }],
    ['/app', { kind: 'index' }],
    ['/app/index.html', { kind: 'index' }],
    ['/app/patients', { kind: 'index' }],
    ['/app/patients/123', { kind: 'index' }],
    ['/app/callback', { kind: 'index' }],
    ['/app/assets/index-DL7M_EBl.js', { kind: 'file', file: 'assets/index-DL7M_EBl.js' }],
    ['/app/favicon.svg', { kind: 'file', file: 'favicon.svg' }],
    ['/app/assets/missing.js', { kind: 'none' }],
    ['/app/../package.json', { kind: 'none' }],
    ['/app/assets/../../.env', { kind: 'none' }],
  ])('%s → %j', (path, expected) => {
    expect(resolveWebPath(path, FILES)).toEqual(expected);
  });
});

describe('webCacheControl', () => {
  test.each([
    ['assets/index-DL7M_EBl.js', 'public, max-age=31536000, immutable'],
    ['assets/index-kFEGp_r4.css', 'public, max-age=31536000, immutable'],
    ['favicon.svg', 'no-cache'],
    ['index.html', 'no-cache'],
  ])('%s → %s', (file, expected) => {
    expect(webCacheControl(file)).toBe(expected);
  });
});

describe('the Content Security Policy', () => {
  test.each([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ])('contains %s', (directive) => {
    expect(WEB_CSP).toContain(directive);
  });

  test.each(["'unsafe-inline'", "'unsafe-eval'", '*', 'http:', 'https:'])('never allows %s', (source) => {
    expect(WEB_CSP.split(/[; ]+/)).not.toContain(source);
  });
});
