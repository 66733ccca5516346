/**
 * The allow/deny matrix against the real FHIR routes: every caller × every FHIR interaction × patient A's
 * and patient B's data. Each cell asserts the status code, and that no data of a patient the caller may not see
 * appears anywhere in the body (entries, includes, Bundle totals, links).
 */
import type { Bundle } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, bearer, grantPatient, tokenFor } from './helpers/auth.ts';

type Who = 'A' | 'B';
interface Data {
  patient: string;
  family: string;
  order: string;
  study: string;
  /** A spare order per caller for the delete cells. */
  spare: Record<string, string>;
}

let app: FastifyInstance;
let admin: { authorization: string };
const data = {} as Record<Who, Data>;
const tag = `${process.pid}${Date.now().toString(36)}`;
const practitioner = { rad: '', other: '' };

/** Callers: token factory, the patients whose data they may read, and whose orders they may write. */
interface CallerRow {
  token: () => Promise<string>;
  sees: Who[];
  writes: Who[];
  /** No scope or role reaches the resource types used here at all: every cell is 403. */
  forbidden?: boolean;
}
const tokens: Record<string, string> = {};
const callers: Record<string, CallerRow> = {
  'patient-A token': {
    token: () =>
      tokenFor(app, {
        user: { username: 'mx-pa', roles: [] },
        scope: 'launch/patient patient/*.rs',
        patient: data.A.patient,
      }),
    sees: ['A'],
    writes: [],
  },
  'patient-B token': {
    token: () =>
      tokenFor(app, {
        user: { username: 'mx-pb', roles: [] },
        scope: 'launch/patient patient/*.rs',
        patient: data.B.patient,
      }),
    sees: ['B'],
    writes: [],
  },
  'doctor granted A': {
    token: async () => {
      const t = await tokenFor(app, { user: { username: 'mx-doctor', roles: ['doctor'] }, scope: 'user/*.cruds' });
      await grantPatient(app, 'mx-doctor', data.A.patient);
      return t;
    },
    sees: ['A'],
    writes: ['A'],
  },
  radiologist: {
    token: () =>
      tokenFor(app, {
        user: { username: 'mx-rad', roles: ['radiologist'], practitionerId: practitioner.rad },
        scope: 'user/*.cruds',
      }),
    sees: ['A'],
    writes: [],
  },
  auditor: {
    token: () => tokenFor(app, { user: { username: 'mx-auditor', roles: ['auditor'] }, scope: 'user/*.rs' }),
    sees: [],
    writes: [],
    forbidden: true,
  },
  admin: { token: () => adminToken(app), sees: ['A', 'B'], writes: ['A', 'B'] },
  'system client limited to A': {
    token: async () =>
      tokenFor(app, { client: { clientId: `mx-sys-a-${tag}`, scope: 'system/*.rs', patients: [data.A.patient] } }),
    sees: ['A'],
    writes: [],
  },
  'system client system/*.rs': {
    token: () => tokenFor(app, { client: { clientId: `mx-sys-all-${tag}`, scope: 'system/*.rs', patients: null } }),
    sees: ['A', 'B'],
    writes: [],
  },
};

async function create(type: string, body: Record<string, unknown>): Promise<string> {
  const res = await request(app.server)
    .post(`/fhir/${type}`)
    .set(admin)
    .set('content-type', 'application/fhir+json')
    .send(JSON.stringify({ resourceType: type, ...body }));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const orderBody = (patient: string, performer?: string) => ({
  status: 'active',
  intent: 'order',
  code: { coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }] },
  subject: { reference: `Patient/${patient}` },
  ...(performer ? { performer: [{ reference: performer }] } : {}),
});

const performerOf = (who: Who) => `Practitioner/${who === 'A' ? practitioner.rad : practitioner.other}`;

beforeAll(async () => {
  app = await buildApp(testConfig());
  await app.ready();
  admin = bearer(await adminToken(app));
  practitioner.rad = await create('Practitioner', { name: [{ family: `Rad${tag}` }] });
  practitioner.other = await create('Practitioner', { name: [{ family: `Other${tag}` }] });
  for (const who of ['A', 'B'] as const) {
    const family = `Matrix${who}${tag}`;
    const patient = await create('Patient', { name: [{ family }] });
    // A's order is assigned to the radiologist; B's to someone else.
    const order = await create('ServiceRequest', orderBody(patient, performerOf(who)));
    const study = await create('ImagingStudy', {
      status: 'available',
      identifier: [
        { system: 'urn:dicom:uid', value: `urn:oid:1.2.826.0.1.3680043.8.498.${Date.now()}${who === 'A' ? 1 : 2}` },
      ],
      subject: { reference: `Patient/${patient}` },
      basedOn: [{ reference: `ServiceRequest/${order}` }],
      modality: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' }],
      series: [
        {
          uid: `1.2.826.0.1.3680043.8.498.${Date.now()}${who === 'A' ? 3 : 4}`,
          modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' },
        },
      ],
    });
    const spare: Record<string, string> = {};
    for (const name of Object.keys(callers)) spare[name] = await create('ServiceRequest', orderBody(patient));
    data[who] = { patient, family, order, study, spare };
  }
  for (const [name, c] of Object.entries(callers)) tokens[name] = await c.token();
});
afterAll(async () => {
  await app.close();
});

/** Every identifier of `who`'s data that must never show up for a caller who may not see it. */
function markers(who: Who): string[] {
  const d = data[who];
  return [d.patient, d.family, d.order, d.study, ...Object.values(d.spare)];
}

function expectNoLeak(body: unknown, caller: CallerRow, ignore: string[] = []): void {
  let text = JSON.stringify(body ?? '');
  for (const s of ignore) text = text.split(s).join('');
  for (const who of ['A', 'B'] as const) {
    if (caller.sees.includes(who)) continue;
    for (const m of markers(who)) expect(text, `${who}'s ${m} leaked`).not.toContain(m);
  }
}

/** Cells whose request names an id: the OperationOutcome of a 404/403 may echo it, exactly as for a missing id. */
type Cell = {
  name: string;
  run: (auth: { authorization: string }, who: Who, caller: string) => request.Test;
  expected: (c: CallerRow, who: Who) => number;
  /** Search cells: how many matches the caller must get. */
  matches?: (c: CallerRow, who: Who) => number;
  /** Text of the request itself (echoed in links) that is not a leak. */
  echo?: (who: Who) => string[];
};

const read = (c: CallerRow, who: Who) => (c.forbidden ? 403 : c.sees.includes(who) ? 200 : 404);
const search = (c: CallerRow) => (c.forbidden ? 403 : 200);
const one = (c: CallerRow, who: Who) => (c.sees.includes(who) ? 1 : 0);
const write = (ok: number) => (c: CallerRow, who: Who) => (c.writes.includes(who) ? ok : 403);
const json = { 'content-type': 'application/fhir+json' };

const cells: Cell[] = [
  {
    name: 'read Patient',
    run: (a, w) => request(app.server).get(`/fhir/Patient/${data[w].patient}`).set(a),
    expected: read,
    echo: (w) => [data[w].patient],
  },
  {
    name: 'vread Patient',
    run: (a, w) => request(app.server).get(`/fhir/Patient/${data[w].patient}/_history/1`).set(a),
    expected: read,
    echo: (w) => [data[w].patient],
  },
  {
    name: 'read ImagingStudy',
    run: (a, w) => request(app.server).get(`/fhir/ImagingStudy/${data[w].study}`).set(a),
    expected: read,
    echo: (w) => [data[w].study],
  },
  {
    name: 'history instance',
    run: (a, w) => request(app.server).get(`/fhir/ServiceRequest/${data[w].order}/_history`).set(a),
    expected: read,
    echo: (w) => [data[w].order],
  },
  {
    name: 'search by patient',
    run: (a, w) =>
      request(app.server).get(`/fhir/ImagingStudy?patient=Patient/${data[w].patient}&_total=accurate`).set(a),
    expected: search,
    matches: one,
    echo: (w) => [data[w].patient],
  },
  {
    name: 'search chained',
    run: (a, w) =>
      request(app.server).get(`/fhir/ImagingStudy?subject:Patient.family=${data[w].family}&_total=accurate`).set(a),
    expected: search,
    matches: one,
    echo: (w) => [data[w].family],
  },
  {
    name: 'search _include',
    run: (a, w) =>
      request(app.server)
        .get(`/fhir/ServiceRequest?_id=${data[w].order}&_include=ServiceRequest:patient&_total=accurate`)
        .set(a),
    expected: search,
    matches: one,
    echo: (w) => [data[w].order],
  },
  {
    name: 'search _revinclude',
    run: (a, w) =>
      request(app.server)
        .get(`/fhir/ServiceRequest?_id=${data[w].order}&_revinclude=ImagingStudy:basedon&_total=accurate`)
        .set(a),
    expected: search,
    matches: one,
    echo: (w) => [data[w].order],
  },
  {
    name: 'search everything (_include + _revinclude, no filter)',
    run: (a) =>
      request(app.server)
        .get(
          '/fhir/ServiceRequest?code=http://loinc.org|24627-2&_include=ServiceRequest:patient&_revinclude=ImagingStudy:basedon&_count=200&_total=accurate',
        )
        .set(a),
    expected: search,
  },
  {
    name: 'type history',
    run: (a) => request(app.server).get('/fhir/ServiceRequest/_history?_count=500').set(a),
    expected: search,
  },
  {
    name: 'create',
    run: (a, w) =>
      request(app.server)
        .post('/fhir/ServiceRequest')
        .set(a)
        .set(json)
        .send(JSON.stringify({ resourceType: 'ServiceRequest', ...orderBody(data[w].patient) })),
    expected: write(201),
  },
  {
    name: 'update',
    run: (a, w) =>
      request(app.server)
        .put(`/fhir/ServiceRequest/${data[w].order}`)
        .set(a)
        .set(json)
        .send(
          JSON.stringify({
            resourceType: 'ServiceRequest',
            id: data[w].order,
            ...orderBody(data[w].patient, performerOf(w)),
          }),
        ),
    expected: write(200),
    echo: (w) => [data[w].order],
  },
  {
    name: 'delete',
    run: (a, w, caller) => request(app.server).delete(`/fhir/ServiceRequest/${data[w].spare[caller]}`).set(a),
    expected: write(204),
    echo: (w) => Object.values(data[w].spare),
  },
];

const rows = Object.keys(callers).flatMap((caller) =>
  cells.flatMap((cell) => (['A', 'B'] as const).map((who) => [caller, cell.name, who] as const)),
);

describe('allow/deny matrix on the FHIR API', () => {
  test.each(rows)('%s · %s · %s data', async (callerName, cellName, who) => {
    const caller = callers[callerName]!;
    const cell = cells.find((c) => c.name === cellName)!;
    const res = await cell.run(bearer(tokens[callerName]!), who, callerName);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(cell.expected(caller, who));
    expectNoLeak(res.body, caller, cell.echo?.(who) ?? []);
    if (res.status === 200 && (res.body as Bundle).resourceType === 'Bundle') {
      const bundle = res.body as Bundle;
      const matches = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include');
      if (cell.matches) {
        expect(matches).toHaveLength(cell.matches(caller, who));
        if (bundle.total !== undefined) expect(bundle.total).toBe(cell.matches(caller, who));
      }
    }
  });
});

test("a read outside the caller's patients is indistinguishable from a missing resource", async () => {
  const auth = bearer(tokens['doctor granted A']!);
  const outside = await request(app.server).get(`/fhir/Patient/${data.B.patient}`).set(auth);
  const missing = await request(app.server).get('/fhir/Patient/no-such-patient').set(auth);
  expect(outside.status).toBe(404);
  expect(missing.status).toBe(404);
  const shape = (b: { issue: { code: string; diagnostics?: string }[] }, id: string) =>
    b.issue.map((i) => ({ ...i, diagnostics: i.diagnostics?.replace(id, 'ID') }));
  expect(shape(outside.body, data.B.patient)).toEqual(shape(missing.body, 'no-such-patient'));
});

describe('SMART v2 granular scopes narrow searches and reads', () => {
  test.each([
    ['patient/ImagingStudy.rs?modality=CT', 'ImagingStudy', 1],
    ['patient/ImagingStudy.rs?modality=MR', 'ImagingStudy', 0],
    ['patient/ImagingStudy.rs?modality=MR patient/ImagingStudy.rs?modality=CT', 'ImagingStudy', 1],
    ['patient/ServiceRequest.rs?code=http://loinc.org|24627-2', 'ServiceRequest', -1],
    ['patient/ServiceRequest.rs?code=http://loinc.org|36643-5', 'ServiceRequest', 0],
  ])("%s → %s matches %i (-1: all of the patient's)", async (scope, type, expected) => {
    const all = await tokenFor(app, {
      user: { username: 'mx-granular', roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.patient,
    });
    const unrestricted = await request(app.server).get(`/fhir/${type}?_count=200`).set(bearer(all));
    const count = expected === -1 ? ((unrestricted.body as Bundle).entry ?? []).length : expected;
    expect(count).toBeGreaterThanOrEqual(0);
    const token = await tokenFor(app, { user: { username: 'mx-granular', roles: [] }, scope, patient: data.A.patient });
    const res = await request(app.server).get(`/fhir/${type}?_count=200&_total=accurate`).set(bearer(token));
    expect(res.status).toBe(200);
    expect((res.body as Bundle).entry ?? []).toHaveLength(count);
    expectNoLeak(res.body, callers['patient-A token']!);
    if (type === 'ImagingStudy') {
      const read = await request(app.server).get(`/fhir/ImagingStudy/${data.A.study}`).set(bearer(token));
      expect(read.status).toBe(count === 1 ? 200 : 404);
    }
  });
});
