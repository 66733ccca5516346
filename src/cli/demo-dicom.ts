/**
 * DICOM instances of the demo (pure, no I/O except reading pydicom's test files):
 * - a generated CT head phantom (Shepp–Logan ellipses in Hounsfield units, PS3.3 A.3 CT Image IOD), one series of
 *   axial slices whose geometry (position, orientation, spacing) lets a viewer scroll and reconstruct it;
 * - pydicom's real test files, rewritten to the demo patient and order.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import dcmjs from 'dcmjs';

/** Where Debian's python3-pydicom keeps its test files (installed by scripts/setup.sh). */
export const PYDICOM_DIR = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';

/** A fresh UID under the UUID-derived root 2.25 (PS3.5 §B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

/** Who and what the instances belong to: PatientID is the MRN and AccessionNumber the order's accession. */
export interface DemoTarget {
  mrn: string;
  accession: string;
  patientName: string;
  birthDate: string;
  sex: 'M' | 'F' | 'O';
  studyDescription: string;
}

/** One ellipse of the phantom: centre, semi-axes (fractions of the field of view), rotation, value added (HU). */
interface Ellipse {
  x: number;
  y: number;
  z: number;
  a: number;
  b: number;
  c: number;
  deg: number;
  hu: number;
}

/** The 3D Shepp–Logan phantom (Kak & Slaney 1988, table 3.1 extended in z), values in HU over air (−1000). */
const PHANTOM: readonly Ellipse[] = [
  { x: 0, y: 0, z: 0, a: 0.69, b: 0.92, c: 0.9, deg: 0, hu: 1800 }, // skull (bone, ~+800 HU)
  { x: 0, y: -0.0184, z: 0, a: 0.6624, b: 0.874, c: 0.88, deg: 0, hu: -760 }, // brain (~+40 HU)
  { x: 0.22, y: 0, z: 0, a: 0.11, b: 0.31, c: 0.22, deg: -18, hu: -40 }, // ventricles (CSF, ~0 HU)
  { x: -0.22, y: 0, z: 0, a: 0.16, b: 0.41, c: 0.28, deg: 18, hu: -40 },
  { x: 0, y: 0.35, z: -0.15, a: 0.21, b: 0.25, c: 0.41, deg: 0, hu: 30 }, // lesions
  { x: 0, y: 0.1, z: 0.25, a: 0.046, b: 0.046, c: 0.05, deg: 0, hu: 20 },
  { x: 0, y: -0.1, z: 0.25, a: 0.046, b: 0.046, c: 0.05, deg: 0, hu: 20 },
  { x: -0.08, y: -0.605, z: 0, a: 0.046, b: 0.023, c: 0.05, deg: 0, hu: 60 },
  { x: 0, y: -0.606, z: 0, a: 0.023, b: 0.023, c: 0.02, deg: 0, hu: 60 },
  { x: 0.06, y: -0.605, z: 0, a: 0.023, b: 0.046, c: 0.02, deg: 0, hu: 60 },
];

/** Hounsfield units of the phantom at normalized coordinates (−1…1 in each axis). */
export function phantomHu(x: number, y: number, z: number): number {
  let hu = -1000;
  for (const e of PHANTOM) {
    const t = (e.deg * Math.PI) / 180;
    const dx = x - e.x;
    const dy = y - e.y;
    const u = dx * Math.cos(t) + dy * Math.sin(t);
    const v = -dx * Math.sin(t) + dy * Math.cos(t);
    const w = z - e.z;
    if ((u * u) / (e.a * e.a) + (v * v) / (e.b * e.b) + (w * w) / (e.c * e.c) <= 1) hu += e.hu;
  }
  return hu;
}

function write(meta: Record<string, unknown>, dataset: Record<string, unknown>, pixels: ArrayBuffer): Buffer {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  // Pixel Data (7FE0,0010) with its VR given: 16-bit pixels are OW (PS3.5 §8.2).
  dict.dict['7FE00010'] = { vr: 'OW', Value: [pixels] };
  return Buffer.from(dict.write());
}

function today(): { date: string; time: string } {
  const iso = new Date().toISOString();
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}

/** The CT phantom: `slices` axial images of `size`×`size` pixels (16-bit signed, rescale slope 1, intercept 0). */
export function ctPhantomSeries(target: DemoTarget, opts: { slices?: number; size?: number } = {}): Buffer[] {
  const slices = opts.slices ?? 24;
  const size = opts.size ?? 128;
  const fovMm = 240;
  const spacing = fovMm / size;
  const thickness = 5;
  const study = newUid();
  const series = newUid();
  const frame = newUid();
  const { date, time } = today();
  const files: Buffer[] = [];
  for (let k = 0; k < slices; k++) {
    const z = -0.9 + (1.8 * (k + 0.5)) / slices;
    const pixels = new Int16Array(size * size);
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        // Rows run anterior→posterior (+y down in the phantom's table).
        pixels[r * size + c] = phantomHu((2 * (c + 0.5)) / size - 1, (2 * (r + 0.5)) / size - 1, z);
      }
    }
    const sop = newUid();
    const zMm = (k - slices / 2) * thickness;
    files.push(
      write(
        {
          FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
          MediaStorageSOPClassUID: CT_IMAGE_STORAGE,
          MediaStorageSOPInstanceUID: sop,
          TransferSyntaxUID: EXPLICIT_VR_LE,
          ImplementationClassUID: '2.25.246163914315716512963815327474049315043',
          ImplementationVersionName: 'EHR_DEMO_1',
        },
        {
          SpecificCharacterSet: 'ISO_IR 192',
          ImageType: ['DERIVED', 'SECONDARY', 'AXIAL'],
          SOPClassUID: CT_IMAGE_STORAGE,
          SOPInstanceUID: sop,
          StudyDate: date,
          SeriesDate: date,
          ContentDate: date,
          StudyTime: time,
          ContentTime: time,
          AccessionNumber: target.accession,
          Modality: 'CT',
          Manufacturer: 'imaging-ehr-facade demo (synthetic phantom, not a patient)',
          ReferringPhysicianName: '',
          StudyDescription: target.studyDescription,
          SeriesDescription: 'Shepp-Logan head phantom, axial 5 mm',
          PatientName: target.patientName,
          PatientID: target.mrn,
          PatientBirthDate: target.birthDate,
          PatientSex: target.sex,
          BodyPartExamined: 'HEAD',
          SliceThickness: String(thickness),
          KVP: '120',
          PatientPosition: 'HFS',
          StudyInstanceUID: study,
          SeriesInstanceUID: series,
          StudyID: '1',
          SeriesNumber: '1',
          InstanceNumber: String(k + 1),
          ImagePositionPatient: [String(-fovMm / 2), String(-fovMm / 2), String(zMm)],
          ImageOrientationPatient: ['1', '0', '0', '0', '1', '0'],
          FrameOfReferenceUID: frame,
          PositionReferenceIndicator: '',
          SliceLocation: String(zMm),
          SamplesPerPixel: 1,
          PhotometricInterpretation: 'MONOCHROME2',
          Rows: size,
          Columns: size,
          PixelSpacing: [String(spacing), String(spacing)],
          BitsAllocated: 16,
          BitsStored: 16,
          HighBit: 15,
          PixelRepresentation: 1,
          WindowCenter: '40',
          WindowWidth: '400',
          RescaleIntercept: '0',
          RescaleSlope: '1',
          RescaleType: 'HU',
        },
        pixels.buffer,
      ),
    );
  }
  return files;
}

/** Is the pydicom test-file folder there? (Debian's python3-pydicom; the demo skips these files without it.) */
export function pydicomAvailable(dir = PYDICOM_DIR): boolean {
  return existsSync(join(dir, 'CT_small.dcm'));
}

/** A pydicom test file rewritten to `target` with fresh UIDs (one new study per call, one series). */
export function pydicomStudy(name: string, target: DemoTarget, dir = PYDICOM_DIR): Buffer[] {
  const bytes = readFileSync(join(dir, name));
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab);
  const sop = newUid();
  const set = (tag: string, vr: string, value: string) => {
    dict.dict[tag] = { vr, Value: [value] };
  };
  set('00100020', 'LO', target.mrn);
  set('00080050', 'SH', target.accession);
  dict.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: target.patientName }] };
  set('00100030', 'DA', target.birthDate);
  set('00100040', 'CS', target.sex);
  set('00081030', 'LO', target.studyDescription);
  set('0020000D', 'UI', newUid());
  set('0020000E', 'UI', newUid());
  set('00080018', 'UI', sop);
  dict.meta['00020003'] = { vr: 'UI', Value: [sop] };
  return [Buffer.from(dict.write())];
}
