/**
 * What a first-time evaluator touches: the API description (/openapi.json, /docs), /metrics and its protection, and
 * unknown paths (404 with or without a token).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { listenMetrics } from '../src/metrics/listen.ts';
import { documentedRoute, knownUndocumented } from '../src/openapi/coverage.ts';
import { ROUTE_DOCS } from '../src/openapi/route-docs.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, bearer, tokenFor } from './helpers/auth.ts';
import { makeSeries } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';

let app: FastifyInstance;
let admin: { authorization: string };
let nurse: { authorization: string };

beforeAll(async () => {
  // Breaker probes wait long here, so that a breaker the test opens stays open until the test closes it.
  app = await buildApp(testConfig({ breakerRetryMs: 600_000, breakerMaxRetryMs: 600_000 }));
  await app.ready();
  admin = bearer(await adminToken(app));
  nurse = bearer(await tokenFor(app, { user: { username: 'first-run-nurse', roles: ['nurse'] }, scope: 'user/*.rs' }));
});
afterAll(async () => {
  await app.close();
});

type OpenApi = { openapi: string; paths: Record<string, Record<string, unknown>> };

/** `/api/v1/dicom/viewer-url/:orderId` → `/api/v1/dicom/viewer-url/{orderId}` (OpenAPI path templating). */
const oasPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/(.)\/$/, '$1');

describe('OpenAPI document', () => {
  test('served at /openapi.json without a token, valid OpenAPI 3.1', async () => {
    const res = await request(app.server).get('/openapi.json').expect(200);
    const doc = res.body as OpenApi;
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  test('documents every registered route of /api/v1, /auth, health and /metrics; leaves out only FHIR, DICOMweb, the viewer and the docs', async () => {
    const doc = (await request(app.server).get('/openapi.json').expect(200)).body as OpenApi;
    const missing: string[] = [];
    const unexplained: string[] = [];
    for (const r of app.registeredRoutes) {
      if (r.method === 'HEAD' || r.method === 'OPTIONS') continue;
      const op = doc.paths[oasPath(r.url)]?.[r.method.toLowerCase()];
      if (documentedRoute(r.url, r.config)) {
        if (!op) missing.push(`${r.method} ${r.url}`);
      } else if (!knownUndocumented(r.url, r.config)) {
        unexplained.push(`${r.method} ${r.url}`);
      }
    }
    expect(missing).toEqual([]);
    expect(unexplained).toEqual([]);
    for (const key of ['/healthz', '/readyz', '/auth/token', '/api/v1/dicom/upload', '/metrics']) {
      expect(Object.keys(doc.paths)).toContain(key);
    }
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/fhir') || p.startsWith('/dicom-web'))).toEqual([]);
    expect(JSON.stringify(doc)).toContain('/fhir/metadata');
    expect(JSON.stringify(doc)).toContain('/docs/dicomweb');
  });

  test('every entry of the route descriptions names a registered route (none left behind by a rename)', () => {
    const registered = new Set(app.registeredRoutes.map((r) => `${r.method} ${r.url.replace(/(.)\/$/, '$1')}`));
    expect(Object.keys(ROUTE_DOCS).filter((k) => !registered.has(k))).toEqual([]);
  });

  test('every documented operation has a summary and a tag', async () => {
    const doc = (await request(app.server).get('/openapi.json').expect(200)).body as OpenApi;
    const bare = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !(op as { summary?: string }).summary || !(op as { tags?: string[] }).tags?.length)
        .map(([m]) => `${m} ${path}`),
    );
    expect(bare).toEqual([]);
  });

  test('rendered at /docs (HTML and script served locally) and the DICOMweb conformance page, without a token', async () => {
    const page = await request(app.server).get('/docs/').expect(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('/openapi.json');
    expect(page.text).not.toMatch(/https:\/\/cdn\./);
    const script = page.text.match(/src="([^"]*scalar\.js)"/)?.[1];
    expect(script).toBeDefined();
    await request(app.server).get(new URL(script!, 'http://x/docs/').pathname).expect(200);
    const conformance = await request(app.server).get('/docs/dicomweb').expect(200);
    expect(conformance.text).toContain('STOW-RS');
  });
});

describe('/metrics', () => {
  test('needs a token: 401 without, 403 for a non-admin user', async () => {
    await request(app.server).get('/metrics').expect(401);
    await request(app.server).get('/metrics').set(nurse).expect(403);
  });

  test('Prometheus text with request, upstream, STOW, audit and cache metrics', async () => {
    // Traffic: a FHIR read (PostgreSQL, audit), a QIDO search (Orthanc), a STOW with one stored and one refused.
    const booked = await bookPatientAndOrder(app, admin);
    await request(app.server).get('/fhir/Patient?_count=1').set(admin).expect(200);
    await request(app.server).get('/dicom-web/studies?limit=1').set(admin);
    const series = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 1 });
    const boundary = 'metricsboundary';
    await request(app.server)
      .post('/dicom-web/studies')
      .set(admin)
      .set('content-type', STOW_TYPE(boundary))
      .send(multipartBody([...series.files, Buffer.from('not dicom')], boundary));

    const res = await request(app.server).get('/metrics').set(admin).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.text;
    expect(text).toMatch(/ehr_http_requests_total\{method="GET",route="\/fhir\/Patient",status="200"\} \d+/);
    expect(text).toMatch(/ehr_http_request_duration_seconds_bucket\{[^}]*route="\/fhir\/Patient"/);
    expect(text).toMatch(/ehr_upstream_request_duration_seconds_count\{upstream="postgresql",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/ehr_upstream_request_duration_seconds_count\{upstream="orthanc",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/ehr_stow_instances_total\{outcome="stored",reason=""\} [1-9]/);
    expect(text).toMatch(/ehr_stow_instances_total\{outcome="failed",reason="C000"\} [1-9]/);
    expect(text).toMatch(/ehr_audit_commit_duration_seconds_count\{outcome="ok"\} [1-9]/);
    expect(text).toMatch(/ehr_audit_queue_depth\{queue="writer"\} \d+/);
    expect(text).toContain('ehr_cache_lookups_total');
    expect(text).toContain('ehr_process_resident_memory_bytes');
    // Unknown paths are one label value, not one series per path.
    await request(app.server).get('/no/such/path/12345').expect(404);
    const again = (await request(app.server).get('/metrics').set(admin).expect(200)).text;
    expect(again).toMatch(/route="unmatched",status="404"/);
    expect(again).not.toContain('12345');
  });

  test('ehr_breaker_state: 0 while a dependency answers, 1 while its breaker is open', async () => {
    const scrape = async () => (await request(app.server).get('/metrics').set(admin).expect(200)).text;
    const closed = await scrape();
    expect(closed).toMatch(/^# TYPE ehr_breaker_state gauge$/m);
    expect(closed).toMatch(/^ehr_breaker_state\{dependency="orthanc"\} 0$/m);
    expect(closed).toMatch(/^ehr_breaker_state\{dependency="database"\} 0$/m);
    const breaker = app.orthanc.breaker!;
    breaker.failure('connect ECONNREFUSED (opened by the test)');
    try {
      expect((await request(app.server).get('/dicom-web/studies').set(admin)).status).toBe(503);
      const open = await scrape();
      expect(open).toMatch(/^ehr_breaker_state\{dependency="orthanc"\} 1$/m);
      expect(open).toMatch(/^ehr_breaker_state\{dependency="database"\} 0$/m);
    } finally {
      breaker.success();
    }
    expect(await scrape()).toMatch(/^ehr_breaker_state\{dependency="orthanc"\} 0$/m);
  });

  test('the separate listener (EHR_METRICS_LISTEN) answers /metrics without a token and nothing else', async () => {
    const server = await listenMetrics('127.0.0.1:0');
    try {
      const port = (server.address() as { port: number }).port;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('ehr_http_requests_total');
      expect((await fetch(`http://127.0.0.1:${port}/fhir/Patient`)).status).toBe(404);
    } finally {
      server.close();
    }
  });
});

describe('unknown paths', () => {
  const paths = ['/nothing-here', '/api/v1/nothing', '/api/v1/dicom/nothing', '/auth/nothing', '/metrics/x'];
  test.each(paths)('%s: 404 without a token', async (path) => {
    const res = await request(app.server).get(path);
    expect(res.status).toBe(404);
    expect(res.headers['www-authenticate']).toBeUndefined();
  });
  test.each(paths)('%s: 404 with a token', async (path) => {
    await request(app.server).get(path).set(admin).expect(404);
  });
  test('known protected routes still need a token', async () => {
    await request(app.server).get('/fhir/Patient').expect(401);
    await request(app.server).get('/api/v1/dicom/unmatched').expect(401);
    await request(app.server).get('/dicom-web/studies').expect(401);
  });
});
