/**
 * Discovery documents, read by clients no one here wrote: openid-client's OpenID Connect discovery of the `/auth`
 * issuer, and the CapabilityStatement's system-level interactions, AuditEvent and reference policy.
 */
import type { CapabilityStatement } from '@medplum/fhirtypes';
import * as oidc from 'openid-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eventsOf } from './helpers/audit.ts';
import { type FhirTestServer, fhirServer } from './helpers/fhir.ts';

let s: FhirTestServer;
let origin: string;
beforeAll(async () => {
  s = await fhirServer();
  origin = s.base.replace(/\/fhir$/, '');
});
afterAll(async () => {
  await s.app.close();
});

describe('OpenID Connect discovery (sso-openid-connect)', () => {
  test('openid-client discovers the /auth issuer without credentials; the same endpoints as SMART', async () => {
    const config = await oidc.discovery(new URL(`${origin}/auth`), 'any-client', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    const meta = config.serverMetadata();
    const smart = (await (await fetch(`${s.base}/.well-known/smart-configuration`)).json()) as Record<string, unknown>;
    expect(meta.issuer).toBe(smart['issuer']);
    expect(meta.token_endpoint).toBe(smart['token_endpoint']);
    expect(meta.authorization_endpoint).toBe(smart['authorization_endpoint']);
    expect(meta.jwks_uri).toBe(smart['jwks_uri']);
    expect(meta.subject_types_supported).toEqual(['public']);
    expect(smart['capabilities']).toContain('sso-openid-connect');
  });

  test('it is public and not audited (like the SMART configuration)', async () => {
    const res = await request(s.app.server).get('/auth/.well-known/openid-configuration');
    expect(res.status).toBe(200);
    expect(await eventsOf(s.app, String(res.headers['x-request-id']))).toEqual([]);
  });
});

describe('SMART configuration', () => {
  test('advertises management_endpoint: the web app screen of the user connected apps', async () => {
    const smart = (await (await fetch(`${s.base}/.well-known/smart-configuration`)).json()) as Record<string, unknown>;
    expect(smart['management_endpoint']).toBe(`${origin}/app/authorizations`);
  });
});

describe('CapabilityStatement', () => {
  test('declares batch, transaction, system search, $everything, AuditEvent and the reference policy', async () => {
    const cs = (await request(s.app.server).get('/fhir/metadata')).body as CapabilityStatement;
    const rest = cs.rest?.[0];
    expect(rest?.interaction?.map((i) => i.code).sort()).toEqual(['batch', 'search-system', 'transaction']);
    const audit = rest?.resource?.find((r) => r.type === 'AuditEvent');
    expect(audit?.interaction?.map((i) => i.code)).toEqual(['read', 'search-type']);
    expect(audit?.searchParam?.map((p) => p.name)).toEqual(expect.arrayContaining(['patient', 'date', 'agent']));
    for (const r of rest?.resource ?? []) expect(r.referencePolicy, r.type).toEqual(['literal', 'local', 'enforced']);
    const patient = rest?.resource?.find((r) => r.type === 'Patient');
    expect(patient?.operation?.map((o) => o.name)).toEqual(['everything']);
    expect(rest?.resource?.find((r) => r.type === 'ImagingStudy')?.searchInclude).toContain('*');
    for (const t of ['Organization', 'Location', 'PractitionerRole', 'DiagnosticReport', 'Observation']) {
      expect(rest?.resource?.map((r) => r.type)).toContain(t);
    }
  });
});
