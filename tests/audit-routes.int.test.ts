/**
 * No access path skips the audit: every route the real app registers is enumerated from
 * Fastify's route tree, called without credentials and with an admin token, and each call under /fhir, /dicom-web,
 * /api or /auth must leave exactly one stored AuditEvent; the routes that leave none are exactly the documented
 * public ones (context.ts UNAUDITED) and those outside the audited prefixes.
 */
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { AUDITED_PREFIXES, isAudited, UNAUDITED } from '../src/audit/context.ts';
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

/** Every (method, path) in Fastify's printed route tree (`printRoutes({ commonPrefix: false })`). */
function routesOf(tree: string): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    const path = (depth > 0 ? (stack[depth - 1] ?? '') : '') + (m[2] ?? '');
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (m[3] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      out.push({ method, path });
  }
  return out;
}

const SAMPLE = '1.2.840.99999.1';
const concrete = (path: string) => path.replace(/:[A-Za-z_]+/g, SAMPLE).replace(/\*/g, 'x');

test('every audited route leaves exactly one AuditEvent, without and with credentials', async () => {
  const routes = routesOf(app.printRoutes({ commonPrefix: false }));
  expect(routes.length).toBeGreaterThan(20);
  const audited = routes.filter((r) => isAudited(r.method, concrete(r.path)));
  for (const prefix of ['/fhir', '/dicom-web', '/auth']) {
    expect(
      audited.some((r) => r.path.startsWith(prefix)),
      prefix,
    ).toBe(true);
  }
  // What is left out is documented: the public list, or outside the audited prefixes.
  for (const r of routes.filter((x) => !audited.includes(x))) {
    const p = concrete(r.path);
    const outside = !AUDITED_PREFIXES.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
    const listed = UNAUDITED.some((u) => u.methods.includes(r.method) && (u.path === '*' || u.path === p));
    expect(outside || listed, `${r.method} ${r.path}`).toBe(true);
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
