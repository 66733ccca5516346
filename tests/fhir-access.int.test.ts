import { validateResource } from '@medplum/core';
import type { CapabilityStatement, Identifier, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Access, PatientFilter } from '../src/auth/access.ts';
import { loadDefinitions } from '../src/fhir/definitions.ts';
import { FhirError } from '../src/fhir/errors.ts';
import { createRepositoryContext } from '../src/fhir/plugin.ts';
import { RESOURCE_TYPES, RESOURCES } from '../src/fhir/registry.ts';
import { FhirRepository, type InteractionEvent } from '../src/fhir/repository.ts';
import { type FhirTestServer, fhirServer, uniq } from './helpers/fhir.ts';
import { testConfig } from './helpers/app.ts';

const MRN = 'http://imaging-ehr.local/fhir/sid/mrn';
const ACC = 'http://imaging-ehr.local/fhir/sid/accession';
const tag = uniq('acc').replace(/[^a-z0-9]/gi, '');

let s: FhirTestServer;
const events: InteractionEvent[] = [];
const ctx = createRepositoryContext(testConfig(), (e) => events.push(e));
const ALL: PatientFilter = { all: true };

/** A hand-made access context: everything allowed, but only the given patients' compartments. */
function onlyPatients(ids: string[], allows: Access['allows'] = () => true): Access {
  return {
    kind: 'user',
    agent: { who: 'Practitioner/test', sub: 'test', roles: ['doctor'] },
    allows,
    patientFilter: () => ({ all: false, patientIds: ids }),
    restrictions: () => [],
  };
}
const everything: Access = { ...onlyPatients([]), patientFilter: () => ALL };

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof FhirError) return err.statusCode;
    throw err;
  }
}

const ids = { p1: `p1-${tag}`, p2: `p2-${tag}`, o1: `o1-${tag}`, o2: `o2-${tag}` };
/** Study ids of patient 2 sort before patient 1's, so that filtering after LIMIT would return an empty first page. */
const study = (n: string) => `${n}-${tag}`;

beforeAll(async () => {
  s = await fhirServer();
  const admin = new FhirRepository(s.app.db, everything, ctx);
  for (const p of [ids.p1, ids.p2]) await admin.update('Patient', p, { resourceType: 'Patient', id: p });
  for (const [o, p] of [
    [ids.o1, ids.p1],
    [ids.o2, ids.p2],
  ] as const) {
    await admin.update('ServiceRequest', o, {
      resourceType: 'ServiceRequest',
      id: o,
      status: 'active',
      intent: 'order',
      code: { text: 'CT' },
      subject: { reference: `Patient/${p}` },
    });
  }
  const put = (id: string, patient: string, order: string) =>
    admin.update('ImagingStudy', id, {
      resourceType: 'ImagingStudy',
      id,
      status: 'available',
      subject: { reference: `Patient/${patient}` },
      basedOn: [{ reference: `ServiceRequest/${order}` }],
      identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.${Date.now()}${Math.floor(Math.random() * 1e6)}` }],
    });
  // Patient 2's studies; one of them is (oddly) based on patient 1's order, to test _revinclude filtering.
  await put(study('a1'), ids.p2, ids.o2);
  await put(study('a2'), ids.p2, ids.o2);
  await put(study('a3'), ids.p2, ids.o1);
  await put(study('z1'), ids.p1, ids.o1);
});
afterAll(async () => {
  await s.app.close();
});

describe('the repository applies the caller’s patient constraint in SQL', () => {
  const repo = () => new FhirRepository(s.app.db, onlyPatients([ids.p1]), ctx);
  const mine = (rs: Resource[]) => rs.map((r) => r.id);

  test('before paging: the first page of one is patient 1’s study, not an empty page', async () => {
    const { page } = await repo().search('ImagingStudy', {
      _id: [study('a1'), study('a2'), study('a3'), study('z1')].join(','),
      _count: '1',
    });
    expect(mine(page.matches)).toEqual([study('z1')]);
    expect(page.next).toBeUndefined();
  });

  test('reads outside are 404 like missing resources; inside work', async () => {
    expect(await status(repo().read('ImagingStudy', study('a1')))).toBe(404);
    expect(await status(repo().read('Patient', ids.p2))).toBe(404);
    expect(await status(repo().vread('Patient', ids.p2, '1'))).toBe(404);
    expect((await repo().read('Patient', ids.p1)).resource.id).toBe(ids.p1);
  });

  test('_include and _revinclude only bring in visible resources', async () => {
    const { page } = await repo().search('ServiceRequest', {
      _id: `${ids.o1},${ids.o2}`,
      _revinclude: 'ImagingStudy:basedon',
    });
    expect(mine(page.matches)).toEqual([ids.o1]);
    expect(mine(page.included)).toEqual([study('z1')]);
    const inc = await repo().search('ImagingStudy', { _id: study('z1'), _include: 'ImagingStudy:basedon' });
    expect(mine(inc.page.included)).toEqual([ids.o1]);
    const unrestricted = await new FhirRepository(s.app.db, everything, ctx).search('ServiceRequest', {
      _id: ids.o1,
      _revinclude: 'ImagingStudy:basedon',
    });
    expect(mine(unrestricted.page.included).sort()).toEqual([study('a3'), study('z1')].sort());
  });

  test('chained parameters do not reach other patients', async () => {
    const p2 = await new FhirRepository(s.app.db, everything, ctx).read('Patient', ids.p2);
    const mrn = (p2.resource as { identifier: Identifier[] }).identifier.find((i) => i.system === MRN)?.value;
    const { page } = await repo().search('ImagingStudy', { 'patient.identifier': `${MRN}|${mrn}` });
    expect(page.matches).toEqual([]);
  });

  test('history: instance history outside is 404, type history only has visible versions', async () => {
    expect(await status(repo().history('ImagingStudy', study('a1'), {}))).toBe(404);
    const h = await repo().history('ImagingStudy', undefined, { _count: '1000' });
    expect([...new Set(h.entries.map((e) => e.resource.id))]).toEqual([study('z1')]);
  });

  test('writes outside are 403; writes inside work', async () => {
    const r = repo();
    const other = await new FhirRepository(s.app.db, everything, ctx).read('ImagingStudy', study('a1'));
    expect(await status(r.update('ImagingStudy', study('a1'), other.resource))).toBe(403);
    expect(await status(r.delete('ImagingStudy', study('a1')))).toBe(403);
    expect(
      await status(
        r.create('ServiceRequest', {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          code: { text: 'x' },
          subject: { reference: `Patient/${ids.p2}` },
        }),
      ),
    ).toBe(403);
    expect(
      await status(
        r.create('ServiceRequest', {
          resourceType: 'ServiceRequest',
          status: 'active',
          intent: 'order',
          code: { text: 'x' },
          subject: { reference: `Patient/${ids.p1}` },
        }),
      ),
    ).toBe(200);
  });

  test('allows() false is 403, no access at all is 401', async () => {
    const noSearch = new FhirRepository(
      s.app.db,
      onlyPatients([ids.p1], (i) => i !== 'search'),
      ctx,
    );
    expect(await status(noSearch.search('Patient', {}))).toBe(403);
    expect(await status(new FhirRepository(s.app.db, null, ctx).read('Patient', ids.p1))).toBe(401);
  });

  test('every interaction reaches the onInteraction hook with its outcome', async () => {
    events.length = 0;
    await status(repo().read('Patient', ids.p1));
    await status(repo().read('Patient', ids.p2));
    expect(events.map((e) => [e.interaction, e.type, e.id, e.status])).toEqual([
      ['read', 'Patient', ids.p1, 200],
      ['read', 'Patient', ids.p2, 404],
    ]);
    expect(events[0]?.access?.agent.who).toBe('Practitioner/test');
  });
});

describe('STOW-RS support: lookups by bridge key and linking inside a caller-owned transaction', () => {
  test('find by MRN and accession, link the order and store the study in one transaction', async () => {
    const admin = new FhirRepository(s.app.db, everything, ctx);
    const patient = await admin.read('Patient', ids.p1);
    const mrn = (patient.resource as { identifier: Identifier[] }).identifier.find((i) => i.system === MRN)
      ?.value as string;
    const order = await admin.read('ServiceRequest', ids.o1);
    const acc = (order.resource as { identifier: Identifier[] }).identifier.find((i) => i.system === ACC)
      ?.value as string;
    const uid = `2.25.77${Date.now()}`;
    await s.app.db.transaction(async (tx) => {
      const r = admin.withConnection(tx);
      expect((await r.findPatientByMrn(mrn))?.resource.id).toBe(ids.p1);
      expect((await r.findOrderByAccession(acc))?.resource.id).toBe(ids.o1);
      await r.linkOrderToStudy(ids.o1, {
        studyInstanceUid: uid,
        orthancStudyId: `orthanc-${tag}`,
        numberOfImages: 3,
        uploadedAt: new Date('2026-02-06T10:30:00Z'),
        status: 'completed',
      });
      await r.update(
        'ImagingStudy',
        `st-${tag}`,
        {
          resourceType: 'ImagingStudy',
          id: `st-${tag}`,
          status: 'available',
          subject: { reference: `Patient/${ids.p1}` },
          basedOn: [{ reference: `ServiceRequest/${ids.o1}` }],
          identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${uid}` }],
        },
        { orthancStudyId: `orthanc-${tag}` },
      );
    });
    expect(await admin.orderBridge(ids.o1)).toEqual({
      accession_number: acc,
      study_instance_uid: uid,
      orthanc_study_id: `orthanc-${tag}`,
      number_of_images: 3,
      uploaded_at: '2026-02-06T10:30:00.000Z',
    });
    expect((await admin.read('ServiceRequest', ids.o1)).resource).toMatchObject({ status: 'completed' });
    expect((await admin.findImagingStudyByStudyUid(uid))?.resource.id).toBe(`st-${tag}`);
  });

  test('a failing transaction leaves nothing behind; a second link of the same study is a 409', async () => {
    const admin = new FhirRepository(s.app.db, everything, ctx);
    const before = await admin.read('ServiceRequest', ids.o2);
    await expect(
      s.app.db.transaction(async (tx) => {
        await admin.withConnection(tx).linkOrderToStudy(ids.o2, {
          studyInstanceUid: `2.25.88${Date.now()}`,
          orthancStudyId: `x-${tag}`,
          numberOfImages: 1,
          uploadedAt: new Date(),
        });
        throw new Error('STOW failed later');
      }),
    ).rejects.toThrow('STOW failed later');
    expect((await admin.read('ServiceRequest', ids.o2)).versionId).toBe(before.versionId);
    const linked = await admin.orderBridge(ids.o1);
    expect(
      await status(
        admin.linkOrderToStudy(ids.o2, {
          studyInstanceUid: linked?.study_instance_uid as string,
          orthancStudyId: `y-${tag}`,
          numberOfImages: 1,
          uploadedAt: new Date(),
        }),
      ),
    ).toBe(409);
  });
});

describe('CapabilityStatement', () => {
  test('GET /fhir/metadata (public) is generated from the registry, routes and profiles', async () => {
    const res = await request(s.app.server).get('/fhir/metadata');
    expect(res.status).toBe(200);
    const cs = res.body as CapabilityStatement;
    loadDefinitions();
    expect(() => validateResource(cs)).not.toThrow();
    expect(cs.fhirVersion).toBe('4.0.1');
    const all = cs.rest?.[0]?.resource ?? [];
    expect(all.map((r) => r.type)).toEqual([...RESOURCE_TYPES, 'AuditEvent']);
    const rest = all.filter((r) => r.type !== 'AuditEvent');
    for (const r of rest) {
      const def = RESOURCES[r.type as keyof typeof RESOURCES];
      expect(r.searchParam?.map((p) => p.name)).toEqual(['_id', '_lastUpdated', ...def.params]);
      expect(r.interaction?.map((i) => i.code).sort()).toEqual(
        [
          'create',
          'delete',
          'history-instance',
          'history-type',
          'patch',
          'read',
          'search-type',
          'update',
          'vread',
        ].sort(),
      );
    }
    const profiles = Object.fromEntries(rest.filter((r) => r.profile).map((r) => [r.type, r.profile]));
    expect(profiles).toEqual({
      Patient: 'http://imaging-ehr.local/fhir/StructureDefinition/ehr-patient',
      ServiceRequest: 'http://imaging-ehr.local/fhir/StructureDefinition/ehr-service-request',
      ImagingStudy: 'http://imaging-ehr.local/fhir/StructureDefinition/ehr-imaging-study',
    });
    expect(rest.find((r) => r.type === 'ImagingStudy')?.searchInclude).toEqual(
      expect.arrayContaining(['ImagingStudy:basedon', 'ImagingStudy:patient', 'ImagingStudy:endpoint']),
    );
    expect(rest.find((r) => r.type === 'ServiceRequest')?.searchRevInclude).toEqual([
      'ImagingStudy:basedon',
      'DiagnosticReport:based-on',
    ]);
  });
});
