/**
 * Test data for the DICOMweb integration tests: three EHR patients A, B and C, each with two studies of several
 * series (real pydicom files rewritten with dcmjs), stored in the real test Orthanc through its REST API, and linked
 * in the EHR's study index (`patients`, `imaging_studies`) with plain SQL. Plus one unlinked study whose PatientID is
 * A's MRN (what C-STORE or `hold` mode leaves behind).
 *
 * (Until STOW-RS is wired into the app, data goes to Orthanc directly; once it is, the STOW tests cover that path.)
 */
import type { FastifyInstance } from 'fastify';
import dcmjs from 'dcmjs';
import { sql } from 'slonik';
import { inject } from 'vitest';
import { newUid, pydicomFile } from './dicom.ts';

export interface SeriesData {
  uid: string;
  instances: string[];
}
export interface StudyData {
  uid: string;
  date: string;
  series: SeriesData[];
}
export interface PatientData {
  id: string;
  mrn: string;
  name: string;
  studies: StudyData[];
}
export interface Dataset {
  A: PatientData;
  B: PatientData;
  C: PatientData;
  /** A study in Orthanc with A's MRN as PatientID but no EHR link. */
  unlinked: StudyData;
}

type Attrs = Record<string, { vr: string; Value: unknown[] }>;

/** Rewrites a real DICOM file with dcmjs: any attribute given (hex tag → DICOM JSON element). */
export function dicomWith(template: Buffer, attrs: Attrs): Buffer {
  const ab = template.buffer.slice(template.byteOffset, template.byteOffset + template.byteLength) as ArrayBuffer;
  const file = dcmjs.data.DicomMessage.readFile(ab);
  for (const [tag, el] of Object.entries(attrs)) file.dict[tag] = el;
  const sop = attrs['00080018']?.Value[0];
  if (typeof sop === 'string') file.meta['00020003'] = { vr: 'UI', Value: [sop] };
  return Buffer.from(file.write());
}

const ui = (v: string) => ({ vr: 'UI', Value: [v] });

export async function storeInOrthanc(files: Buffer[]): Promise<void> {
  const stack = inject('stack');
  const auth = `Basic ${Buffer.from(`${stack.orthancUsername}:${stack.orthancPassword}`).toString('base64')}`;
  for (const body of files) {
    const res = await fetch(`${stack.orthancUrl}/instances`, {
      method: 'POST',
      headers: { authorization: auth },
      body,
    });
    if (!res.ok) throw new Error(`Orthanc refused a test instance: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  }
}

/** One study: `seriesSizes[i]` instances in series i, alternating CT and MR templates. */
export function makeStudy(
  patient: { mrn: string; name: string },
  date: string,
  seriesSizes: number[],
  description: string,
) {
  const study: StudyData = { uid: newUid(), date, series: [] };
  const files: Buffer[] = [];
  seriesSizes.forEach((size, s) => {
    const template = pydicomFile(s % 2 === 0 ? 'CT_small.dcm' : 'MR_small.dcm');
    const series: SeriesData = { uid: newUid(), instances: [] };
    for (let i = 0; i < size; i++) {
      const sop = newUid();
      series.instances.push(sop);
      files.push(
        dicomWith(template, {
          '00100020': { vr: 'LO', Value: [patient.mrn] },
          '00100010': { vr: 'PN', Value: [{ Alphabetic: patient.name }] },
          '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
          '00080020': { vr: 'DA', Value: [date] },
          '00081030': { vr: 'LO', Value: [description] },
          '0008103E': { vr: 'LO', Value: [`${description} series ${s + 1}`] },
          '0020000D': ui(study.uid),
          '0020000E': ui(series.uid),
          '00080018': ui(sop),
          '00200011': { vr: 'IS', Value: [s + 1] },
          '00200013': { vr: 'IS', Value: [i + 1] },
        }),
      );
    }
    study.series.push(series);
  });
  return { study, files };
}

async function linkPatient(app: FastifyInstance, p: PatientData): Promise<void> {
  const content = { resourceType: 'Patient', id: p.id, identifier: [{ system: 'urn:mrn', value: p.mrn }] };
  await app.db.query(sql.unsafe`
    INSERT INTO patients (id, version_id, last_updated, content, mrn)
    VALUES (${p.id}, 1, now(), ${sql.jsonb(content)}, ${p.mrn})`);
}

export async function linkStudy(app: FastifyInstance, patientId: string, s: StudyData): Promise<void> {
  const id = `is-${s.uid.slice(-20)}`;
  const content = {
    resourceType: 'ImagingStudy',
    id,
    status: 'available',
    subject: { reference: `Patient/${patientId}` },
    identifier: [{ system: 'urn:dicom:uid', value: `urn:oid:${s.uid}` }],
  };
  await app.db.query(sql.unsafe`
    INSERT INTO imaging_studies (id, version_id, last_updated, content, patient_id, study_instance_uid)
    VALUES (${id}, 1, now(), ${sql.jsonb(content)}, ${patientId}, ${s.uid})`);
}

/** Builds, stores and links the whole dataset. `tag` keeps several test files apart in the shared stack. */
export async function seedDataset(app: FastifyInstance, tag: string): Promise<Dataset> {
  const people = {
    A: { id: `dwA-${tag}`, mrn: `MRN-A-${tag}`, name: 'Müller^Anna' },
    B: { id: `dwB-${tag}`, mrn: `MRN-B-${tag}`, name: 'Berg^Bob' },
    C: { id: `dwC-${tag}`, mrn: `MRN-C-${tag}`, name: 'Cole^Cara' },
  };
  const dates = { A: ['20190301', '20210615'], B: ['20200110', '20220202'], C: ['20180505', '20230909'] };
  const out: Partial<Dataset> = {};
  const files: Buffer[] = [];
  for (const key of ['A', 'B', 'C'] as const) {
    const p: PatientData = { ...people[key], studies: [] };
    for (const [i, date] of dates[key].entries()) {
      const made = makeStudy(p, date, i === 0 ? [2, 2] : [1, 2, 1], `${key} study ${i + 1}`);
      p.studies.push(made.study);
      files.push(...made.files);
    }
    out[key] = p;
  }
  const unlinked = makeStudy(people.A, '20200505', [1], 'unlinked study');
  files.push(...unlinked.files);
  await storeInOrthanc(files);
  const data = { ...(out as Omit<Dataset, 'unlinked'>), unlinked: unlinked.study };
  for (const p of [data.A, data.B, data.C]) {
    await linkPatient(app, p);
    for (const s of p.studies) await linkStudy(app, p.id, s);
  }
  return data;
}

export const studyUids = (...ps: PatientData[]) => ps.flatMap((p) => p.studies.map((s) => s.uid));
export const seriesUids = (...ps: PatientData[]) =>
  ps.flatMap((p) => p.studies.flatMap((s) => s.series.map((x) => x.uid)));
export const instanceUids = (...ps: PatientData[]) =>
  ps.flatMap((p) => p.studies.flatMap((s) => s.series.flatMap((x) => x.instances)));

/** First value of a tag in a DICOM JSON object. */
export function first(item: Record<string, { Value?: unknown[] }>, tag: string): unknown {
  return item[tag]?.Value?.[0];
}
