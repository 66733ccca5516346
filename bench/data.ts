/**
 * The benchmark's DICOM data, generated with dcmjs and reproducible: UIDs are derived from a seed string (SHA-256 →
 * a 2.25 UID, PS3.5 §B.2), pixels from a formula. Each instance is a 512×512, 16-bit, uncompressed (Explicit VR
 * Little Endian) CT Image Storage object (PS3.3 A.3) of ~525 KB: a head phantom (skull ring, brain, ventricles)
 * whose shape changes along the slices, with consistent geometry so that OHIF stacks them.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CT_IMAGE_STORAGE, writeCtPart10 } from '../tests/e2e/helpers/ct-phantom.ts';

export const SIZE = 512;

/** A UID derived from a seed: the same seed always gives the same UID. */
export function seededUid(seed: string): string {
  const h = createHash('sha256').update(`imaging-ehr-bench:${seed}`).digest();
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString()}`;
}

function phantomHu(x: number, y: number, z: number): number {
  const scale = 0.75 + 0.25 * Math.sin(Math.PI * z);
  const r = Math.hypot(x / (0.78 * scale), y / (0.92 * scale));
  if (r > 1) return -1000;
  if (r > 0.9) return 900;
  const ventricle = 0.12 + 0.08 * Math.sin(Math.PI * z);
  if (Math.hypot((x - 0.16) / ventricle, (y + 0.05) / (ventricle * 2.2)) < 1) return 8;
  if (Math.hypot((x + 0.16) / ventricle, (y + 0.05) / (ventricle * 2.2)) < 1) return 8;
  return 38 + Math.round(6 * Math.sin(9 * x) * Math.cos(7 * y));
}

const pixelCache = new Map<number, ArrayBuffer>();

/** Stored pixel values of slice `z` (0..1, quantised to 1/64 so that at most 65 images are kept in memory). */
function pixels(z: number): ArrayBuffer {
  const key = Math.round(z * 64);
  const hit = pixelCache.get(key);
  if (hit) return hit;
  const px = new Uint16Array(SIZE * SIZE);
  for (let row = 0; row < SIZE; row++) {
    for (let col = 0; col < SIZE; col++) {
      px[row * SIZE + col] = phantomHu((2 * col) / (SIZE - 1) - 1, (2 * row) / (SIZE - 1) - 1, key / 64) + 1024;
    }
  }
  pixelCache.set(key, px.buffer);
  return px.buffer;
}

export interface StudySpec {
  /** Seed of every UID in the study. */
  seed: string;
  patientId: string;
  patientName: string;
  accession: string;
  studyDate: string;
  series: number;
  instancesPerSeries: number;
}

export interface InstanceRef {
  study: string;
  series: string;
  instance: string;
}

export interface StudyLayout {
  studyUid: string;
  series: { uid: string; instances: string[] }[];
}

/** The UIDs of a study (without generating any pixels). */
export function layoutOf(spec: StudySpec): StudyLayout {
  const studyUid = seededUid(`${spec.seed}/study`);
  const series = Array.from({ length: spec.series }, (_, s) => ({
    uid: seededUid(`${spec.seed}/series/${s}`),
    instances: Array.from({ length: spec.instancesPerSeries }, (_, i) => seededUid(`${spec.seed}/series/${s}/${i}`)),
  }));
  return { studyUid, series };
}

export function instancesOf(layout: StudyLayout): InstanceRef[] {
  return layout.series.flatMap((s) => s.instances.map((i) => ({ study: layout.studyUid, series: s.uid, instance: i })));
}

/** One DICOM Part 10 file of the study: series `s`, instance `i`. */
export function ctInstance(spec: StudySpec, layout: StudyLayout, s: number, i: number): Buffer {
  const series = layout.series[s];
  const sop = series?.instances[i];
  if (!series || !sop) throw new Error(`no instance ${s}/${i} in ${spec.seed}`);
  const n = spec.instancesPerSeries;
  const spacing = 0.5;
  const thickness = 3;
  const dataset = {
    _vrMap: { PixelData: 'OW' },
    SOPClassUID: CT_IMAGE_STORAGE,
    SOPInstanceUID: sop,
    StudyInstanceUID: layout.studyUid,
    SeriesInstanceUID: series.uid,
    PatientID: spec.patientId,
    PatientName: spec.patientName,
    PatientBirthDate: '19700101',
    PatientSex: 'O',
    AccessionNumber: spec.accession,
    StudyDescription: 'CT HEAD (benchmark phantom)',
    SeriesDescription: `Axial 3 mm #${s + 1}`,
    StudyDate: spec.studyDate,
    StudyTime: '101500',
    SeriesDate: spec.studyDate,
    SeriesTime: '101600',
    StudyID: '1',
    Modality: 'CT',
    Manufacturer: 'imaging-ehr-facade bench',
    SeriesNumber: String(s + 1),
    InstanceNumber: String(i + 1),
    ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
    FrameOfReferenceUID: `${layout.studyUid}.${s + 1}`,
    PositionReferenceIndicator: '',
    ImagePositionPatient: [-(SIZE * spacing) / 2, -(SIZE * spacing) / 2, i * thickness],
    ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
    SliceLocation: String(i * thickness),
    SliceThickness: String(thickness),
    PixelSpacing: [spacing, spacing],
    KVP: '120',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: SIZE,
    Columns: SIZE,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 0,
    RescaleIntercept: '-1024',
    RescaleSlope: '1',
    RescaleType: 'HU',
    WindowCenter: '40',
    WindowWidth: '120',
    PixelData: [pixels(n === 1 ? 0.5 : i / (n - 1))],
  };
  return writeCtPart10(dataset, sop, 'EHR-BENCH');
}

export const STOW_BOUNDARY = 'bench-stow-boundary-7d1f0a';
export const STOW_CONTENT_TYPE = `multipart/related; type="application/dicom"; boundary=${STOW_BOUNDARY}`;

const partHead = Buffer.from(`--${STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
const partTail = Buffer.from('\r\n');
const closing = Buffer.from(`--${STOW_BOUNDARY}--\r\n`);

/** A whole STOW-RS body (PS3.18 §10.5) in memory: for the timed ingest runs, generated before the clock starts. */
export function stowBody(files: readonly Buffer[]): Buffer {
  return Buffer.concat([...files.flatMap((f) => [partHead, f, partTail]), closing]);
}

/** A STOW-RS body generated while it is sent (for the 1 GB upload; sent with chunked transfer coding). */
export function stowStream(spec: StudySpec): { stream: Readable; count: number } {
  const layout = layoutOf(spec);
  const count = spec.series * spec.instancesPerSeries;
  async function* parts() {
    for (let s = 0; s < spec.series; s++) {
      for (let i = 0; i < spec.instancesPerSeries; i++) {
        yield Buffer.concat([partHead, ctInstance(spec, layout, s, i), partTail]);
      }
    }
    yield closing;
  }
  return { stream: Readable.from(parts(), { objectMode: false }), count };
}

/** All instances of a study as files (for the timed STOW runs and the data set load). */
export function studyFiles(spec: StudySpec): Buffer[] {
  const layout = layoutOf(spec);
  const out: Buffer[] = [];
  for (let s = 0; s < spec.series; s++) {
    for (let i = 0; i < spec.instancesPerSeries; i++) out.push(ctInstance(spec, layout, s, i));
  }
  return out;
}

/**
 * True when a STOW-RS answer lists failed instances: a non-empty Failed SOP Sequence (0008,1198), PS3.18 §10.5.3.
 * (Orthanc sends the attribute empty when everything was stored.)
 */
export function failedParts(responseText: string): boolean {
  try {
    const body = JSON.parse(responseText) as Record<string, { Value?: unknown[] } | undefined>;
    return (body['00081198']?.Value?.length ?? 0) > 0;
  } catch {
    return true;
  }
}
