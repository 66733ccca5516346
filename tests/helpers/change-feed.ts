import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { createPool, sql } from 'slonik';
import { inject } from 'vitest';
import { type Booked, fhirPost } from './stow.ts';

export type { Booked };

/**
 * Helpers for the C-STORE ingest tests: real DICOM files (pydicom's test data) re-identified with dcmtk's dcmodify,
 * sent with dcmtk's storescu to the test Orthanc's DICOM port, EHR records through the FHIR API, Orthanc checks.
 */

const run = promisify(execFile);
export const DICOM_SOURCE = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';

/** A fresh UID under the UUID-derived root 2.25 (PS3.5 B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`).toString()}`;
}

export interface TestStudy {
  studyUid: string;
  sopUids: string[];
  files: string[];
}

/** `count` instances of one new study (one series) with the given PatientID and AccessionNumber. */
export async function makeStudy(
  patientId: string,
  accession: string,
  count = 2,
  demographics: { patientName?: string; patientSex?: string; patientBirthDate?: string } = {},
): Promise<TestStudy> {
  const dir = mkdtempSync(join(tmpdir(), 'ehr-cstore-'));
  const studyUid = newUid();
  const seriesUid = newUid();
  const files: string[] = [];
  const sopUids: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = join(dir, `i${i}.dcm`);
    copyFileSync(DICOM_SOURCE, file);
    const sop = newUid();
    await run('dcmodify', [
      '-nb',
      '-m',
      `PatientID=${patientId}`,
      '-m',
      `AccessionNumber=${accession}`,
      '-m',
      `StudyInstanceUID=${studyUid}`,
      '-m',
      `SeriesInstanceUID=${seriesUid}`,
      '-m',
      `SOPInstanceUID=${sop}`,
      '-m',
      `InstanceNumber=${i + 1}`,
      // Demographics the EHR patient does not contradict (the facade compares them; an empty value never does).
      ...['-m', `PatientName=${demographics.patientName ?? ''}`],
      ...['-m', `PatientSex=${demographics.patientSex ?? ''}`],
      ...['-m', `PatientBirthDate=${demographics.patientBirthDate ?? ''}`],
      file,
    ]);
    files.push(file);
    sopUids.push(sop);
  }
  return { studyUid, sopUids, files };
}

/** Sends files to the test Orthanc's DICOM port with storescu (C-STORE). */
export async function cStore(files: string[]): Promise<void> {
  const s = inject('stack');
  await run('storescu', ['-aet', 'TESTSCU', '-aec', s.orthancAet, '127.0.0.1', String(s.orthancDicomPort), ...files]);
}

export async function orthanc(path: string, init: RequestInit = {}): Promise<Response> {
  const s = inject('stack');
  const auth = `Basic ${Buffer.from(`${s.orthancUsername}:${s.orthancPassword}`).toString('base64')}`;
  return fetch(`${s.orthancUrl}${path}`, { ...init, headers: { authorization: auth, ...(init.headers ?? {}) } });
}

export async function orthancJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await orthanc(path, init);
  if (!res.ok) throw new Error(`Orthanc ${path}: ${res.status}`);
  return (await res.json()) as T;
}

/** Orthanc study ids holding this StudyInstanceUID (several when copies differ in PatientID). */
export async function orthancStudiesOf(uid: string): Promise<string[]> {
  const found = await orthancJson<{ ID: string; Type: string }[]>('/tools/lookup', { method: 'POST', body: uid });
  return found.filter((f) => f.Type === 'Study').map((f) => f.ID);
}

/** Polls until `probe` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 40_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** An active imaging order for a patient (a new patient unless `patientId` is given); MRN and accession allocated. */
export async function book(
  app: FastifyInstance,
  auth: { authorization: string },
  patient?: { patientId: string; mrn: string },
): Promise<Booked> {
  const p: { patientId: string; mrn: string } =
    patient ??
    (await fhirPost<Patient>(app, auth, {
      resourceType: 'Patient',
      name: [{ family: 'Cstore', given: ['Test'] }],
    }).then((r) => ({ patientId: r.id!, mrn: r.identifier![0]!.value! })));
  const o = await fhirPost<ServiceRequest>(app, auth, {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }] },
    subject: { reference: `Patient/${p.patientId}` },
  });
  return { ...p, orderId: o.id!, accession: o.identifier![0]!.value! };
}

/** The order's bridge keys and the ImagingStudy of a UID, straight from the EHR tables. */
export async function ehrState(app: FastifyInstance, studyUid: string) {
  const study = (await app.db.maybeOne(sql.unsafe`
    SELECT id, orthanc_study_id, content FROM imaging_studies WHERE study_instance_uid = ${studyUid}`)) as {
    id: string;
    orthanc_study_id: string | null;
    content: { status: string; subject?: { reference?: string }; basedOn?: { reference?: string }[] };
  } | null;
  const orders = (await app.db.any(sql.unsafe`
    SELECT id, orthanc_study_id FROM orders WHERE study_instance_uid = ${studyUid}`)) as readonly {
    id: string;
    orthanc_study_id: string;
  }[];
  const logs = (await app.db.any(sql.unsafe`
    SELECT source, order_id, patient_id FROM dicom_upload_logs WHERE study_instance_uid = ${studyUid}`)) as readonly {
    source: string;
    order_id: string;
    patient_id: string;
  }[];
  return { study, orders, logs };
}

/**
 * Makes the next consumer start at Orthanc's latest change (tests do not depend on a clean Orthanc). Call before
 * building an app with the consumer on.
 */
export async function resetFeedCursor(): Promise<void> {
  const pool = await createPool(inject('stack').databaseUrl);
  try {
    await pool.query(sql.unsafe`DELETE FROM change_feed_cursor`);
  } finally {
    await pool.end();
  }
}

/** Settings that make the consumer quick in tests. */
export const FAST_FEED = {
  changeFeedEnabled: true,
  changeFeedStartAt: 'latest',
  changeFeedPollMs: 200,
  changeFeedLeaderRetryMs: 300,
  changeFeedDeletionSweepS: 1,
} as const;
