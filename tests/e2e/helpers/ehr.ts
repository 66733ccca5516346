import { randomUUID } from 'node:crypto';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { bearer, grantPatient, tokenFor } from '../../helpers/auth.ts';

/**
 * EHR set-up for the viewer tests, through the public APIs only: patients and orders with the FHIR API, images with
 * STOW-RS (PS3.18 §10.5), exactly as a client of the facade would do it.
 */

export type Auth = { authorization: string };

export interface Booked {
  patientId: string;
  mrn: string;
  family: string;
  orderId: string;
  accession: string;
}

async function fhirPost<T>(app: FastifyInstance, auth: Auth, body: { resourceType: string }): Promise<T> {
  const res = await app.inject({
    method: 'POST',
    url: `/fhir/${body.resourceType}`,
    headers: { ...auth, 'content-type': 'application/fhir+json' },
    payload: JSON.stringify(body),
  });
  if (res.statusCode !== 201) throw new Error(`creating ${body.resourceType}: ${res.statusCode} ${res.body}`);
  return res.json() as T;
}

/** A patient (MRN allocated by the server) with an active CT order (accession allocated by the server). */
export async function bookPatientAndOrder(app: FastifyInstance, auth: Auth, family: string): Promise<Booked> {
  const p = await fhirPost<Patient>(app, auth, {
    resourceType: 'Patient',
    name: [{ family, given: ['Viewer'] }],
    gender: 'other',
    birthDate: '1970-01-01',
  } as Patient);
  const mrn =
    p.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'MR'))?.value ?? p.identifier?.[0]?.value;
  const o = await addOrder(app, auth, p.id ?? '');
  if (!mrn || !p.id) throw new Error('the server did not allocate an MRN');
  return { patientId: p.id, mrn, family, orderId: o.orderId, accession: o.accession };
}

/** Another active CT order for an existing patient. */
export async function addOrder(
  app: FastifyInstance,
  auth: Auth,
  patientId: string,
): Promise<{ orderId: string; accession: string }> {
  const o = await fhirPost<ServiceRequest>(app, auth, {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24725-4', display: 'CT Head' }] },
    subject: { reference: `Patient/${patientId}` },
  } as ServiceRequest);
  const accession = o.identifier?.find((i) => i.type?.coding?.some((c) => c.code === 'ACSN'))?.value;
  if (!o.id || !accession) throw new Error('the server did not allocate an accession');
  return { orderId: o.id, accession };
}

/** STOW-RS of Part 10 files to /dicom-web/studies; returns the HTTP status (200: all stored). */
export async function stow(app: FastifyInstance, auth: Auth, files: Buffer[]): Promise<number> {
  const boundary = `b-${randomUUID()}`;
  const chunks: Buffer[] = [];
  for (const f of files) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  const res = await app.inject({
    method: 'POST',
    url: '/dicom-web/studies',
    headers: {
      ...auth,
      accept: 'application/dicom+json',
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
    },
    payload: Buffer.concat(chunks),
  });
  if (res.statusCode !== 200) throw new Error(`STOW-RS: ${res.statusCode} ${res.body.slice(0, 500)}`);
  return res.statusCode;
}

export interface Doctor {
  username: string;
  password: string;
  auth: Auth;
}

/** A doctor user with a password (for the login page) and a normal SMART token, granted the given patients. */
export async function doctor(app: FastifyInstance, username: string, patientIds: string[]): Promise<Doctor> {
  const password = `pw-${randomUUID()}`;
  const user = { username, roles: ['doctor' as const], password, practitionerId: `pr-${username}` };
  const token = await tokenFor(app, { user, scope: 'openid fhirUser user/*.cruds' });
  for (const id of patientIds) await grantPatient(app, username, id);
  return { username, password, auth: bearer(token) };
}
