import type { Bundle, Resource } from '@medplum/fhirtypes';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DATE_PREFIXES, dateRange, matchesDate } from '../src/fhir/search/dates.ts';
import { dateCondition } from '../src/fhir/search/sql.ts';
import { bundleResources, type FhirTestServer, fhirServer, uniq } from './helpers/fhir.ts';

const tag = uniq('s').replace(/[^a-z0-9]/gi, '');
const SYS = `urn:test:${tag}`;
const SYS2 = `urn:test2:${tag}`;
const LOINC = 'http://loinc.org';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const id = (name: string) => `${name}-${tag}`;

/** The data set: names are keys, ids are `<name>-<tag>` (client-assigned by PUT). */
const DATA: Resource[] = [
  {
    resourceType: 'Patient',
    id: id('pA'),
    name: [{ family: 'Müller', given: ['Jörg'] }],
    birthDate: '1970-02-03',
    gender: 'male',
    active: true,
    identifier: [{ system: SYS, value: 'A-1' }],
  },
  {
    resourceType: 'Patient',
    id: id('pB'),
    name: [{ family: 'Muller-Smith', given: ['Anna'] }],
    birthDate: '1985-07',
    gender: 'female',
    active: false,
    identifier: [{ system: SYS2, value: 'B-1' }],
  },
  { resourceType: 'Patient', id: id('pC'), name: [{ family: 'Durand', given: ['Élodie'] }], gender: 'other' },
  {
    resourceType: 'Practitioner',
    id: id('drX'),
    name: [{ family: 'Xavier' }],
    identifier: [{ system: SYS, value: 'X-1' }],
  },
  {
    resourceType: 'Endpoint',
    id: id('e1'),
    status: 'active',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'dicom-wado-rs' },
    payloadType: [{ text: 'DICOM' }],
    address: 'https://ehr.example.org/dicom-web',
    identifier: [{ system: SYS, value: 'E-1' }],
  },
  {
    resourceType: 'Endpoint',
    id: id('e2'),
    status: 'off',
    connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' },
    payloadType: [{ text: 'FHIR' }],
    address: 'https://ehr.example.org/fhir',
  },
  {
    resourceType: 'Encounter',
    id: id('encA'),
    status: 'finished',
    class: { system: ACT, code: 'AMB' },
    subject: { reference: `Patient/${id('pA')}` },
    period: { start: '2020-01-01T10:00:00Z', end: '2020-01-01T11:00:00Z' },
  },
  {
    resourceType: 'Encounter',
    id: id('encB'),
    status: 'in-progress',
    class: { system: ACT, code: 'IMP' },
    subject: { reference: `Patient/${id('pB')}` },
    period: { start: '2021-05-05' },
  },
  {
    resourceType: 'ServiceRequest',
    id: id('oA'),
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: LOINC, code: '36643-5' }] },
    subject: { reference: `Patient/${id('pA')}` },
    encounter: { reference: `Encounter/${id('encA')}` },
    authoredOn: '2020-01-01',
    requester: { reference: `Practitioner/${id('drX')}` },
    performer: [{ reference: `Practitioner/${id('drX')}` }],
  },
  {
    resourceType: 'ServiceRequest',
    id: id('oB'),
    status: 'completed',
    intent: 'original-order',
    code: { coding: [{ system: LOINC, code: '24627-2' }] },
    subject: { reference: `Patient/${id('pB')}` },
    authoredOn: '2021-06-01',
  },
  {
    resourceType: 'ImagingStudy',
    id: id('sA'),
    status: 'available',
    subject: { reference: `Patient/${id('pA')}` },
    basedOn: [{ reference: `ServiceRequest/${id('oA')}` }],
    endpoint: [{ reference: `Endpoint/${id('e1')}` }],
    started: '2020-01-02T08:00:00Z',
    identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.1${Date.now()}` }],
    series: [
      { uid: `2.25.9${Date.now()}`, modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'CT' } },
    ],
  },
  {
    resourceType: 'ImagingStudy',
    id: id('sB'),
    status: 'registered',
    subject: { reference: `Patient/${id('pB')}` },
    basedOn: [{ reference: `ServiceRequest/${id('oB')}` }],
    started: '2021-06-02',
    identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.2${Date.now()}` }],
    series: [
      { uid: `2.25.8${Date.now()}`, modality: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: 'MR' } },
    ],
  },
];
const byName = (type: string) => DATA.filter((r) => r.resourceType === type).map((r) => r.id as string);

let s: FhirTestServer;
beforeAll(async () => {
  s = await fhirServer();
  for (const r of DATA) {
    const res = await request(s.app.server).put(`/fhir/${r.resourceType}/${r.id}`).set(s.auth).send(r);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
});
afterAll(async () => {
  await s.app.close();
});

async function search(type: string, query: string, headers: Record<string, string> = {}): Promise<Bundle> {
  const scoped = `${query}${query ? '&' : ''}_id=${byName(type).join(',')}`;
  const res = await request(s.app.server).get(`/fhir/${type}?${scoped}`).set(s.auth).set(headers);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Bundle;
}
const names = (b: Bundle, mode = 'match') =>
  bundleResources(b)
    .filter((_r, i) => b.entry?.[i]?.search?.mode === mode)
    .map((r) => (r.id as string).replace(`-${tag}`, ''))
    .sort();

describe('search parameters and modifiers', () => {
  test.each([
    ['Patient', 'family=müller', ['pA', 'pB']],
    ['Patient', 'family=MULL', ['pA', 'pB']],
    ['Patient', 'family:exact=Müller', ['pA']],
    ['Patient', 'family:exact=muller', []],
    ['Patient', 'family:contains=SMITH', ['pB']],
    ['Patient', 'name=jorg', ['pA']],
    ['Patient', 'given=élo', ['pC']],
    ['Patient', 'name=anna,durand', ['pB', 'pC']],
    ['Patient', `identifier=${SYS}|A-1`, ['pA']],
    ['Patient', `identifier=${SYS}|`, ['pA']],
    ['Patient', 'identifier=B-1', ['pB']],
    ['Patient', 'identifier=|B-1', []],
    ['Patient', 'birthdate=1970', ['pA']],
    ['Patient', 'birthdate=ge1980', ['pB']],
    ['Patient', 'birthdate=lt1980', ['pA']],
    ['Patient', 'birthdate=sa1985-06', ['pB']],
    ['Patient', 'birthdate=eb1985-07-15', ['pA']],
    ['Patient', 'birthdate=ne1970-02-03', ['pB']],
    ['Patient', 'birthdate:missing=true', ['pC']],
    ['Patient', 'birthdate:missing=false', ['pA', 'pB']],
    ['Patient', 'gender=female', ['pB']],
    ['Patient', 'gender:not=male', ['pB', 'pC']],
    ['Patient', 'gender=male,other', ['pA', 'pC']],
    ['Patient', 'active=true', ['pA']],
    ['Patient', 'active:missing=true', ['pC']],
    ['Patient', '_lastUpdated=gt2000-01-01', ['pA', 'pB', 'pC']],
    ['Patient', '_lastUpdated=lt2000-01-01', []],
    ['Practitioner', 'name=xav', ['drX']],
    ['Practitioner', `identifier=${SYS}|X-1`, ['drX']],
    ['Encounter', `patient=Patient/${id('pA')}`, ['encA']],
    ['Encounter', `subject=${id('pB')}`, ['encB']],
    ['Encounter', 'status=finished', ['encA']],
    ['Encounter', 'class=AMB', ['encA']],
    ['Encounter', `class=${ACT}|IMP`, ['encB']],
    ['Encounter', 'date=2020-01-01', ['encA']],
    ['Encounter', 'date=ge2021', ['encB']],
    ['ServiceRequest', `patient=${id('pA')}`, ['oA']],
    ['ServiceRequest', `encounter=Encounter/${id('encA')}`, ['oA']],
    ['ServiceRequest', 'status=completed', ['oB']],
    ['ServiceRequest', 'intent=order', ['oA']],
    ['ServiceRequest', `code=${LOINC}|36643-5`, ['oA']],
    ['ServiceRequest', 'authored=2021', ['oB']],
    ['ServiceRequest', `requester=Practitioner/${id('drX')}`, ['oA']],
    ['ServiceRequest', `performer=${id('drX')}`, ['oA']],
    ['ServiceRequest', `patient.identifier=${SYS}|A-1`, ['oA']],
    ['ServiceRequest', 'patient.family=muller', ['oA', 'oB']],
    ['ServiceRequest', 'subject:Patient.gender=female', ['oB']],
    ['ImagingStudy', `patient=${id('pA')}`, ['sA']],
    ['ImagingStudy', 'started=lt2021', ['sA']],
    ['ImagingStudy', 'modality=MR', ['sB']],
    ['ImagingStudy', 'status=registered', ['sB']],
    ['ImagingStudy', `basedon=ServiceRequest/${id('oA')}`, ['sA']],
    ['ImagingStudy', `endpoint=${id('e1')}`, ['sA']],
    ['ImagingStudy', 'endpoint:missing=true', ['sB']],
    ['ImagingStudy', `patient.identifier=${SYS}|A-1`, ['sA']],
    ['Endpoint', 'connection-type=dicom-wado-rs', ['e1']],
    ['Endpoint', 'status=off', ['e2']],
    ['Endpoint', `identifier=${SYS}|E-1`, ['e1']],
  ])('%s?%s', async (type, query, expected) => {
    expect(names(await search(type, query))).toEqual(expected);
  });

  test('ImagingStudy by study UID identifier and series UID', async () => {
    const sA = DATA.find((r) => r.id === id('sA')) as Resource & {
      identifier: { value: string }[];
      series: { uid: string }[];
    };
    expect(names(await search('ImagingStudy', `identifier=urn:dicom:uid|${sA.identifier[0]?.value}`))).toEqual(['sA']);
    expect(names(await search('ImagingStudy', `series=${sA.series[0]?.uid}`))).toEqual(['sA']);
  });

  test('POST _search with a form body equals GET', async () => {
    const res = await request(s.app.server)
      .post('/fhir/Patient/_search')
      .set(s.auth)
      .type('form')
      .send(`family=m%C3%BCller&_id=${byName('Patient').join(',')}`);
    expect(res.status).toBe(200);
    expect(names(res.body)).toEqual(['pA', 'pB']);
  });
});

describe('_include and _revinclude', () => {
  test.each([
    ['ServiceRequest', `_include=ServiceRequest:patient&_id=${id('oA')}`, ['oA'], ['pA']],
    [
      'ImagingStudy',
      '_include=ImagingStudy:basedon&_include=ImagingStudy:endpoint&_include=ImagingStudy:patient',
      ['sA', 'sB'],
      ['e1', 'oA', 'oB', 'pA', 'pB'],
    ],
    ['ServiceRequest', '_revinclude=ImagingStudy:basedon', ['oA', 'oB'], ['sA', 'sB']],
    ['ServiceRequest', `_revinclude=ImagingStudy:basedon&patient=${id('pB')}`, ['oB'], ['sB']],
  ])('%s?%s', async (type, query, matches, included) => {
    const b = await search(type, query);
    expect(names(b)).toEqual(matches);
    expect(names(b, 'include')).toEqual(included);
  });
});

describe('sorting, _summary, _elements, handling', () => {
  test.each([
    ['_sort=birthdate', ['pC', 'pA', 'pB']],
    ['_sort=-birthdate', ['pB', 'pA', 'pC']],
    ['_sort=family', ['pC', 'pA', 'pB']],
    ['_sort=-_lastUpdated', ['pC', 'pB', 'pA']],
  ])('Patient?%s', async (query, order) => {
    const b = await search('Patient', query);
    expect(bundleResources(b).map((r) => (r.id as string).replace(`-${tag}`, ''))).toEqual(order);
  });

  test('_summary=count gives only the total; _total=accurate adds it to a page', async () => {
    const count = await search('Patient', '_summary=count');
    expect(count.total).toBe(3);
    expect(count.entry ?? []).toEqual([]);
    const page = await search('Patient', '_total=accurate&_count=1');
    expect(page.total).toBe(3);
    expect(page.entry).toHaveLength(1);
  });

  test('_elements and _summary subset the entries', async () => {
    const b = await search('Patient', 'gender=male&_elements=gender');
    expect(Object.keys(b.entry?.[0]?.resource ?? {}).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    const t = await search('Patient', 'gender=male&_summary=true');
    expect(t.entry?.[0]?.resource).toMatchObject({ gender: 'male', birthDate: '1970-02-03' });
  });

  test('unknown parameters: ignored under handling=lenient (and left out of self), 400 under handling=strict', async () => {
    const lenient = await search('Patient', 'foo=bar&gender=male', { prefer: 'handling=lenient' });
    expect(names(lenient)).toEqual(['pA']);
    expect(lenient.link?.find((l) => l.relation === 'self')?.url).not.toContain('foo');
    const strict = await request(s.app.server)
      .get('/fhir/Patient?foo=bar')
      .set(s.auth)
      .set('prefer', 'handling=strict');
    expect(strict.status).toBe(400);
    expect(strict.body.resourceType).toBe('OperationOutcome');
  });
});

describe('keyset paging stays stable while data changes', () => {
  test('pages followed with fhir-kit-client nextPage: no duplicates, no skips, deletions respected', async () => {
    const family = `Page${tag}`;
    const pid = (n: number) => `pg-${tag}-${String(n).padStart(2, '0')}`;
    const put = (n: number, given = 'x') =>
      request(s.app.server)
        .put(`/fhir/Patient/${pid(n)}`)
        .set(s.auth)
        .send({ resourceType: 'Patient', id: pid(n), name: [{ family, given: [given] }] });
    for (let n = 1; n <= 7; n++) expect((await put(n)).status).toBe(201);
    const seen: string[] = [];
    let page = (await s.client.search({
      resourceType: 'Patient',
      searchParams: { family, _count: 3 },
    })) as unknown as Bundle;
    seen.push(...bundleResources(page).map((r) => r.id as string));
    expect(seen).toEqual([pid(1), pid(2), pid(3)]);
    // Changes between pages: an insert before the cursor, one after, a deletion ahead, updates behind and ahead.
    expect((await put(0)).status).toBe(201);
    expect((await put(8)).status).toBe(201);
    expect(
      (
        await request(s.app.server)
          .delete(`/fhir/Patient/${pid(5)}`)
          .set(s.auth)
      ).status,
    ).toBe(204);
    expect((await put(2, 'changed')).status).toBe(200);
    expect((await put(6, 'changed')).status).toBe(200);
    for (;;) {
      const next = s.client.nextPage({ bundle: page as never });
      if (!next) break;
      page = (await next) as unknown as Bundle;
      seen.push(...bundleResources(page).map((r) => r.id as string));
    }
    expect(seen).toEqual([pid(1), pid(2), pid(3), pid(4), pid(6), pid(7), pid(8)]);
  });
});

describe('date prefix SQL agrees with the pure definition', () => {
  const values = ['2020', '2020-06', '2020-06-15', '2020-06-15T10:00:00Z', '2021'];
  const pairs = values.flatMap((t) => values.map((v) => [t, v] as const));
  test.each(DATE_PREFIXES.map((p) => [p]))('%s', async (prefix) => {
    for (const [t, v] of pairs) {
      const target = dateRange(t) as NonNullable<ReturnType<typeof dateRange>>;
      const searchRange = dateRange(v) as NonNullable<ReturnType<typeof dateRange>>;
      const low = sql.fragment`${target.low.toISOString()}::timestamptz`;
      const high = sql.fragment`${target.high.toISOString()}::timestamptz`;
      const row = (await s.app.db.one(sql.unsafe`SELECT ${dateCondition(prefix, low, high, searchRange)} AS m`)) as {
        m: boolean;
      };
      expect(row.m, `${t} ${prefix}${v}`).toBe(matchesDate(prefix, target, searchRange));
    }
  });
});
