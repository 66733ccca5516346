/**
 * No access path skips the audit: every route the real app registers declares in its rules (src/http/route-rules.ts)
 * how it is audited or why it is not; each route that declares an audit is called without credentials and with an
 * admin token, and each call must leave exactly one stored AuditEvent. Every route under /fhir, /dicom-web, /api and
 * /auth declares an audit except the public ones that disclose nothing (discovery, signing keys, the CapabilityStatement).
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { isAuditedRoute, type RouteRules } from '../src/http/route-rules.ts';
import { testApp } from './helpers/app.ts';
import { eventsOf } from './helpers/audit.ts';
import { adminToken, bearer } from './helpers/auth.ts';

let app: FastifyInstance;
let admin: { authorization: string };

beforeAll(async () => {
  app = await testApp();
  admin = bearer(await adminToken(app));
});
afterAll(async () => {
  await app?.close();
});

const SAMPLE = '1.2.840.99999.1';
const concrete = (path: string) => path.replace(/:[A-Za-z_]+/g, SAMPLE).replace(/\*/g, 'x');

test('every audited route leaves exactly one AuditEvent, without and with credentials', async () => {
  const seen = new Set<string>();
  const routes = app.registeredRoutes
    .map((r) => ({ method: r.method, path: r.url, rules: r.config?.['rules'] as RouteRules | undefined }))
    .filter((r) => !seen.has(`${r.method} ${r.path}`) && seen.add(`${r.method} ${r.path}`));
  expect(routes.length).toBeGreaterThan(20);
  const audited = routes.filter((r) => isAuditedRoute(r.rules));
  for (const prefix of ['/fhir', '/dicom-web', '/auth', '/api']) {
    expect(
      audited.some((r) => r.path.startsWith(prefix)),
      prefix,
    ).toBe(true);
  }
  // What is left out says why, and under the audited surfaces only public routes are left out.
  const PUBLIC_UNAUDITED = [
    'GET /fhir/metadata',
    'GET /fhir/.well-known/smart-configuration',
    'GET /auth/jwks',
    'GET /auth/.well-known/openid-configuration',
  ];
  for (const r of routes.filter((x) => !audited.includes(x))) {
    const why = (r.rules?.audit as { none?: string } | undefined)?.none;
    expect(why, `${r.method} ${r.path}`).toMatch(/\w/);
    const surface = /^\/(fhir|dicom-web|api|auth)(\/|$)/.test(r.path);
    if (surface)
      expect(PUBLIC_UNAUDITED, `${r.method} ${r.path}`).toContain(
        `${r.method === 'HEAD' ? 'GET' : r.method} ${r.path}`,
      );
  }
  let n = 0;
  for (const r of audited) {
    for (const headers of [{}, admin]) {
      const id = `route-${++n}-${Date.now()}`;
      // Over a real socket (supertest), as clients call it.
      const m = r.method.toLowerCase() as 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete' | 'options';
      let call = request(app.server)
        [m](concrete(r.path))
        .set({ ...headers, 'x-request-id': id });
      if (r.method !== 'GET' && r.method !== 'HEAD') call = call.set('content-type', 'application/json').send('{}');
      const res = await call;
      expect(res.headers['x-request-id']).toBe(id);
      const events = await eventsOf(app, id);
      expect(events, `${r.method} ${r.path} → ${res.statusCode}`).toHaveLength(1);
    }
  }
});

test('the unaudited routes leave no event (they disclose no patient data)', async () => {
  for (const url of ['/fhir/metadata', '/auth/jwks', '/healthz']) {
    const id = `unaudited-${url.replace(/\W/g, '')}-${Date.now()}`;
    await app.inject({ method: 'GET', url, headers: { 'x-request-id': id } });
    expect(await eventsOf(app, id)).toHaveLength(0);
  }
});
