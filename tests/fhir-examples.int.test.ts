import type { Bundle, Identifier, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bundleResources, expectValid, type FhirTestServer, fhirServer } from './helpers/fhir.ts';
import {
  BASE64_WRAPPED,
  EXAMPLE_TYPES,
  EXCEPTIONS,
  INVALID_REFERENCES,
  prepareExamples,
} from './helpers/fhir-examples.ts';

const MRN = 'http://imaging-ehr.local/fhir/sid/mrn';
const ACC = 'http://imaging-ehr.local/fhir/sid/accession';
const prepared = prepareExamples();

let s: FhirTestServer;
beforeAll(async () => {
  s = await fhirServer();
  for (const r of prepared.stubs) {
    const res = await request(s.app.server).put(`/fhir/${r.resourceType}/${r.id}`).set(s.auth).send(r);
    expect(res.status, `stub ${r.resourceType}/${r.id}: ${JSON.stringify(res.body.issue)}`).toBeLessThan(300);
  }
});
afterAll(async () => {
  await s.app.close();
});

function identifierQuery(i: Identifier): string | undefined {
  if (!i.value) return undefined;
  return i.system ? `${i.system}|${i.value}` : i.value;
}

describe('every R4 example of our types (hl7.fhir.r4.examples@4.0.1): PUT, read back, search by identifier', () => {
  test('there are examples of every served type', () => {
    const types = new Set(prepared.examples.map((r) => r.resourceType));
    expect([...types].sort()).toEqual([...EXAMPLE_TYPES].sort());
    expect(prepared.examples.length).toBe(162);
  });

  test.each(prepared.examples.map((r) => [`${r.resourceType}/${r.id}`, r] as const))('%s', async (key, example) => {
    const put = await request(s.app.server)
      .put(`/fhir/${key}`)
      .set(s.auth)
      .set('content-type', 'application/fhir+json')
      .send(JSON.stringify(example));
    expect(put.status, JSON.stringify(put.body.issue)).toBe(prepared.prestubbed.has(key) ? 200 : 201);
    const stored = put.body as Resource & { identifier?: Identifier[] };
    expectValid(stored);

    const read = await request(s.app.server).get(`/fhir/${key}`).set(s.auth);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(stored);
    for (const [k, v] of Object.entries(example)) {
      if (k === 'meta') continue;
      if (k === 'identifier') expect(read.body.identifier).toEqual(expect.arrayContaining(v as Identifier[]));
      else expect(read.body[k], k).toEqual(v);
    }
    if (example.resourceType === 'Patient') {
      expect(stored.identifier?.filter((i) => i.system === MRN)).toHaveLength(1);
    }
    if (example.resourceType === 'ServiceRequest') {
      const acc = stored.identifier?.filter((i) => i.system === ACC);
      expect(acc).toHaveLength(1);
      expect(acc?.[0]?.type?.coding?.[0]?.code).toBe('ACSN');
    }
    for (const ident of stored.identifier ?? []) {
      const q = identifierQuery(ident);
      if (!q) continue;
      const found = (await s.client.search({
        resourceType: example.resourceType,
        searchParams: { identifier: q },
      })) as unknown as Bundle;
      expect(
        bundleResources(found).map((r) => r.id),
        q,
      ).toContain(example.id);
    }
  });

  test('only the named exceptions were adjusted: references to types not served here, or a missing subject', () => {
    const removed: Record<string, string[]> = {};
    const unwrapped = new Set<string>();
    const invalidRemoved: Record<string, string[]> = {};
    for (const [key, log] of prepared.changes) {
      for (const line of log) {
        if (line.startsWith('removed whitespace from base64')) {
          unwrapped.add(key);
          continue;
        }
        const invalid = /^removed invalid reference \S+ at (\S+)$/.exec(line);
        if (invalid?.[1]) {
          invalidRemoved[key] = [...(invalidRemoved[key] ?? []), invalid[1]];
          continue;
        }
        const m = /^removed reference ([A-Za-z]+)\//.exec(line);
        if (m?.[1]) removed[key] = [...new Set([...(removed[key] ?? []), m[1]])].sort();
        else expect(line, key).toMatch(/^added subject Patient\/example$/);
        if (m?.[1]) expect(EXAMPLE_TYPES as readonly string[], key).not.toContain(m[1]);
      }
    }
    expect(removed).toEqual(EXCEPTIONS);
    expect([...unwrapped]).toEqual(BASE64_WRAPPED);
    expect(invalidRemoved).toEqual(INVALID_REFERENCES);
  });
});
