import { randomUUID } from 'node:crypto';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { expect, inject } from 'vitest';

/** Helpers for the STOW-RS integration tests: EHR records through the FHIR API, multipart bodies, Orthanc checks. */

export interface Booked {
  patientId: string;
  mrn: string;
  orderId: string;
  accession: string;
}

/** POSTs a resource to /fhir and returns the created resource (throws unless 201). */
export async function fhirPost<T>(app: FastifyInstance, auth: { authorization: string }, body: object): Promise<T> {
  const type = (body as { resourceType: string }).resourceType;
  const res = await app.inject({
    method: 'POST',
    url: `/fhir/${type}`,
    headers: { ...auth, 'content-type': 'application/fhir+json' },
    payload: JSON.stringify(body),
  });
  if (res.statusCode !== 201) throw new Error(`creating ${type}: ${res.statusCode} ${res.body}`);
  return res.json() as T;
}

/** A patient (MRN allocated by the server) and an active imaging order for it (accession allocated). */
export async function bookPatientAndOrder(
  app: FastifyInstance,
  auth: { authorization: string },
  opts: { status?: ServiceRequest['status']; name?: string } = {},
): Promise<Booked> {
  // `name` is a DICOM PN (`Family^Given`): the instances sent for this patient carry it, and the facade compares them.
  const [family, given] = (opts.name ?? `Stow-${randomUUID()}`).split('^');
  const name = { family, ...(given ? { given: [given] } : {}) };
  const p = await fhirPost<Patient>(app, auth, { resourceType: 'Patient', name: [name] });
  const mrn = p.identifier?.[0]?.value;
  const o = await fhirPost<ServiceRequest>(app, auth, {
    resourceType: 'ServiceRequest',
    status: opts.status ?? 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }] },
    subject: { reference: `Patient/${p.id}` },
  });
  const accession = o.identifier?.[0]?.value;
  if (!mrn || !accession) throw new Error('the server did not allocate an MRN or accession');
  return { patientId: p.id!, mrn, orderId: o.id!, accession };
}

export async function readFhir<T>(app: FastifyInstance, auth: { authorization: string }, path: string): Promise<T> {
  const res = await app.inject({ method: 'GET', url: `/fhir/${path}`, headers: auth });
  if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${res.body}`);
  return res.json() as T;
}

export interface PartSpec {
  body: Buffer;
  type?: string | null;
  filename?: string;
}

/** A multipart/related (or form-data) body with the given boundary. */
export function multipartBody(parts: (Buffer | PartSpec)[], boundary: string, form = false): Buffer {
  const chunks: Buffer[] = [];
  for (const [i, p] of parts.entries()) {
    const spec: PartSpec = Buffer.isBuffer(p) ? { body: p } : p;
    const headers: string[] = [];
    if (form) {
      headers.push(`Content-Disposition: form-data; name="files"; filename="${spec.filename ?? `file${i}.dcm`}"`);
    }
    const type = spec.type === undefined ? 'application/dicom' : spec.type;
    if (type !== null) headers.push(`Content-Type: ${type}`);
    const head = headers.map((h) => `${h}\r\n`).join('');
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n`), spec.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

export const STOW_TYPE = (boundary: string) => `multipart/related; type="application/dicom"; boundary=${boundary}`;

/** STOW-RS of Part 10 files to /dicom-web/studies as `auth`; expects 200 (all stored). */
export async function stowAll(app: FastifyInstance, auth: { authorization: string }, files: Buffer[]): Promise<void> {
  const boundary = `stow-${randomUUID()}`;
  const res = await request(app.server)
    .post('/dicom-web/studies')
    .set(auth)
    .set('content-type', STOW_TYPE(boundary))
    .send(multipartBody(files, boundary));
  expect(res.status, res.text).toBe(200);
}

/** Orthanc's REST API with the test stack's credentials (what Orthanc actually stored). */
export async function orthanc(path: string, init: RequestInit = {}): Promise<Response> {
  const s = inject('stack');
  const auth = `Basic ${Buffer.from(`${s.orthancUsername}:${s.orthancPassword}`).toString('base64')}`;
  return fetch(`${s.orthancUrl}${path}`, { ...init, headers: { authorization: auth, ...(init.headers ?? {}) } });
}

/** Orthanc's id of a DICOM UID (`/tools/lookup`), or undefined when Orthanc does not have it. */
export async function orthancIdOf(uid: string, type: 'Study' | 'Series' | 'Instance'): Promise<string | undefined> {
  const res = await orthanc('/tools/lookup', { method: 'POST', body: uid });
  const list = (await res.json()) as { ID: string; Type: string }[];
  return list.find((x) => x.Type === type)?.ID;
}

export async function orthancJson<T>(path: string): Promise<T> {
  const res = await orthanc(path);
  if (!res.ok) throw new Error(`Orthanc ${path}: ${res.status}`);
  return (await res.json()) as T;
}

export type DicomJsonItem = Record<string, { vr: string; Value?: unknown[] }>;

export function seq(body: DicomJsonItem, tag: string): DicomJsonItem[] {
  return (body[tag]?.Value ?? []) as DicomJsonItem[];
}

export const val = (item: DicomJsonItem | undefined, tag: string): unknown => item?.[tag]?.Value?.[0];
