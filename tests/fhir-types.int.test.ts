/**
 * The reference-data types (Organization, Location, PractitionerRole) and the clinical results (DiagnosticReport,
 * Observation): served through the same repository, policy and audit; a released report marks its order reported.
 */
import type { Bundle, DiagnosticReport, ServiceRequest } from '@medplum/fhirtypes';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ORDER_STATUS_EXTENSION } from '../src/imaging/order-status.ts';
import { eventOf, patientsOf } from './helpers/audit.ts';
import { bearer } from './helpers/auth.ts';
import { type FhirTestServer, fhirServer, tokenAt, uniq } from './helpers/fhir.ts';

const LOINC = 'http://loinc.org';
let s: FhirTestServer;
beforeAll(async () => {
  s = await fhirServer();
});
afterAll(async () => {
  await s.app.close();
});

const post = (path: string, body: object, auth = s.auth) =>
  request(s.app.server).post(`/fhir/${path}`).set(auth).send(body);

describe('Organization, Location, PractitionerRole: shared reference data', () => {
  test('admin writes them, a doctor reads and searches but may not write', async () => {
    const org = await post('Organization', {
      resourceType: 'Organization',
      name: uniq('Radiology Dept'),
      active: true,
    });
    expect(org.status, JSON.stringify(org.body)).toBe(201);
    const loc = await post('Location', {
      resourceType: 'Location',
      name: uniq('CT room'),
      status: 'active',
      managingOrganization: { reference: `Organization/${org.body.id}` },
    });
    expect(loc.status, JSON.stringify(loc.body)).toBe(201);
    const pract = await post('Practitioner', { resourceType: 'Practitioner', name: [{ family: uniq('Rad') }] });
    const role = await post('PractitionerRole', {
      resourceType: 'PractitionerRole',
      practitioner: { reference: `Practitioner/${pract.body.id}` },
      organization: { reference: `Organization/${org.body.id}` },
      location: [{ reference: `Location/${loc.body.id}` }],
    });
    expect(role.status, JSON.stringify(role.body)).toBe(201);

    const doctor = bearer(await tokenAt(s.app, {} as never, uniq('doc'), ['doctor'], 'user/*.cruds'));
    const found = await request(s.app.server)
      .get(`/fhir/PractitionerRole?organization=Organization/${org.body.id}&_include=PractitionerRole:location`)
      .set(doctor);
    expect(found.status).toBe(200);
    expect((found.body as Bundle).entry?.map((e) => e.resource?.resourceType).sort()).toEqual([
      'Location',
      'PractitionerRole',
    ]);
    const write = await post('Organization', { resourceType: 'Organization', name: 'x' }, doctor);
    expect(write.status).toBe(403);
  });
});

describe('DiagnosticReport and Observation', () => {
  test('a final report basedOn the order marks it reported, in one transaction with its observation', async () => {
    const patient = await post('Patient', { resourceType: 'Patient', name: [{ family: uniq('Reported') }] });
    const order = await post('ServiceRequest', {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: LOINC, code: '36643-5' }] },
      subject: { reference: `Patient/${patient.body.id}` },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    const study = await post('ImagingStudy', {
      resourceType: 'ImagingStudy',
      status: 'available',
      subject: { reference: `Patient/${patient.body.id}` },
      basedOn: [{ reference: `ServiceRequest/${order.body.id}` }],
      identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:2.25.5${Date.now()}` }],
    });
    expect(study.status, JSON.stringify(study.body)).toBe(201);
    const obs = `urn:uuid:${crypto.randomUUID()}`;
    const subject = { reference: `Patient/${patient.body.id}` };
    const tx = await request(s.app.server)
      .post('/fhir')
      .set(s.auth)
      .send({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: {
              resourceType: 'DiagnosticReport',
              status: 'final',
              code: { coding: [{ system: LOINC, code: '36643-5' }] },
              subject,
              basedOn: [{ reference: `ServiceRequest/${order.body.id}` }],
              imagingStudy: [{ reference: `ImagingStudy/${study.body.id}` }],
              result: [{ reference: obs }],
              conclusion: 'No acute findings.',
            },
            request: { method: 'POST', url: 'DiagnosticReport' },
          },
          {
            fullUrl: obs,
            resource: {
              resourceType: 'Observation',
              status: 'final',
              code: { text: 'impression' },
              subject,
              valueString: 'normal',
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      });
    expect(tx.status, JSON.stringify(tx.body)).toBe(200);
    const reread = (await request(s.app.server).get(`/fhir/ServiceRequest/${order.body.id}`).set(s.auth))
      .body as ServiceRequest;
    expect(reread.status).toBe('completed');
    expect(reread.extension).toContainEqual({ url: ORDER_STATUS_EXTENSION, valueCode: 'reported' });
    expect(reread.meta?.versionId).toBe('2');

    const reports = await request(s.app.server)
      .get(`/fhir/DiagnosticReport?based-on=ServiceRequest/${order.body.id}&_include=DiagnosticReport:result`)
      .set(s.auth);
    expect(reports.status).toBe(200);
    const types = (reports.body as Bundle).entry?.map((e) => e.resource?.resourceType).sort();
    expect(types).toEqual(['DiagnosticReport', 'Observation']);
    expect(
      ((reports.body as Bundle).entry?.[0]?.resource as DiagnosticReport | undefined)?.result?.[0]?.reference,
    ).toMatch(/^Observation\//);

    const read = await request(s.app.server)
      .get(`/fhir/Patient/${patient.body.id}/$everything?_type=DiagnosticReport,Observation`)
      .set(s.auth);
    expect(read.status).toBe(200);
    expect((read.body as Bundle).entry).toHaveLength(2);
    const event = await eventOf(s.app, read);
    expect(patientsOf(event).some((p) => p.endsWith(patient.body.id))).toBe(true);
  });

  test('a preliminary report leaves the order as it is', async () => {
    const patient = await post('Patient', { resourceType: 'Patient', name: [{ family: uniq('Prelim') }] });
    const order = await post('ServiceRequest', {
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { text: 'CT' },
      subject: { reference: `Patient/${patient.body.id}` },
    });
    const report = await post('DiagnosticReport', {
      resourceType: 'DiagnosticReport',
      status: 'preliminary',
      code: { text: 'CT report' },
      subject: { reference: `Patient/${patient.body.id}` },
      basedOn: [{ reference: `ServiceRequest/${order.body.id}` }],
    });
    expect(report.status, JSON.stringify(report.body)).toBe(201);
    const reread = await request(s.app.server).get(`/fhir/ServiceRequest/${order.body.id}`).set(s.auth);
    expect(reread.body.status).toBe('active');
  });
});
