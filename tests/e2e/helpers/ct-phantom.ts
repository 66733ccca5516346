import dcmjs from 'dcmjs';

/**
 * A multi-slice CT series written with dcmjs: valid DICOM Part 10 files (PS3.10) of the CT Image Storage SOP class
 * (PS3.3 A.3), uncompressed (Explicit VR Little Endian), with a consistent geometry (position, orientation, spacing)
 * so that OHIF sorts and stacks the slices. The pixels are a head phantom in Hounsfield units: a skull ring (bone),
 * brain tissue and two ventricles whose size changes from slice to slice, in air.
 */

export interface CtSeriesOptions {
  patientId: string;
  patientName: string;
  /** DICOM DA; the facade compares it with the EHR patient's birth date. */
  patientBirthDate?: string;
  patientSex?: string;
  studyInstanceUid: string;
  accessionNumber?: string;
  studyDescription?: string;
  /** DICOM DA; 20260115 unless given. */
  studyDate?: string;
  slices?: number;
  /** Rows = columns. */
  size?: number;
}

export interface CtSeries {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUids: string[];
  files: Buffer[];
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** Hounsfield value of the phantom at (x, y) in [-1, 1]², on slice fraction z in [0, 1]. */
function phantomHu(x: number, y: number, z: number): number {
  const scale = 0.75 + 0.25 * Math.sin(Math.PI * z); // the head is widest in the middle slices
  const r = Math.hypot(x / (0.78 * scale), y / (0.92 * scale));
  if (r > 1) return -1000; // air
  if (r > 0.9) return 900; // skull
  const ventricle = 0.12 + 0.08 * Math.sin(Math.PI * z);
  if (Math.hypot((x - 0.16) / ventricle, (y + 0.05) / (ventricle * 2.2)) < 1) return 8;
  if (Math.hypot((x + 0.16) / ventricle, (y + 0.05) / (ventricle * 2.2)) < 1) return 8;
  return 38 + Math.round(6 * Math.sin(9 * x) * Math.cos(7 * y)); // grey/white matter texture
}

/**
 * Writes a naturalized CT Image Storage dataset as a DICOM Part 10 file (PS3.10 file meta information,
 * Explicit VR Little Endian). Shared by these tests and the benchmark data set (bench/data.ts).
 */
export function writeCtPart10(
  dataset: Record<string, unknown>,
  sopInstanceUid: string,
  implementation: string,
): Buffer {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: CT_IMAGE_STORAGE,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: '2.25.80302813137786398554742050926734630921603366648225212145404',
    ImplementationVersionName: implementation,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

export function ctSeries(opts: CtSeriesOptions): CtSeries {
  const { DicomMetaDictionary } = dcmjs.data;
  const slices = opts.slices ?? 12;
  const size = opts.size ?? 256;
  const spacing = 0.9;
  const thickness = 3;
  const seriesInstanceUid = DicomMetaDictionary.uid();
  const sopInstanceUids: string[] = [];
  const files: Buffer[] = [];
  for (let i = 0; i < slices; i++) {
    const sopInstanceUid = DicomMetaDictionary.uid();
    sopInstanceUids.push(sopInstanceUid);
    const z = slices === 1 ? 0.5 : i / (slices - 1);
    const pixels = new Uint16Array(size * size);
    for (let row = 0; row < size; row++) {
      for (let col = 0; col < size; col++) {
        const hu = phantomHu((2 * col) / (size - 1) - 1, (2 * row) / (size - 1) - 1, z);
        pixels[row * size + col] = hu + 1024; // stored value; RescaleIntercept -1024
      }
    }
    const dataset = {
      _vrMap: { PixelData: 'OW' },
      SOPClassUID: CT_IMAGE_STORAGE,
      SOPInstanceUID: sopInstanceUid,
      StudyInstanceUID: opts.studyInstanceUid,
      SeriesInstanceUID: seriesInstanceUid,
      PatientID: opts.patientId,
      PatientName: opts.patientName,
      PatientBirthDate: opts.patientBirthDate ?? '19700101',
      PatientSex: opts.patientSex ?? 'O',
      AccessionNumber: opts.accessionNumber ?? '',
      StudyDescription: opts.studyDescription ?? 'CT HEAD PHANTOM',
      SeriesDescription: 'Axial 3 mm',
      StudyDate: opts.studyDate ?? '20260115',
      StudyTime: '101500',
      SeriesDate: '20260115',
      SeriesTime: '101600',
      StudyID: '1',
      Modality: 'CT',
      Manufacturer: 'imaging-ehr-facade tests',
      SeriesNumber: '2',
      InstanceNumber: String(i + 1),
      ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
      FrameOfReferenceUID: `${opts.studyInstanceUid}.9`,
      PositionReferenceIndicator: '',
      ImagePositionPatient: [-(size * spacing) / 2, -(size * spacing) / 2, i * thickness],
      ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
      SliceLocation: String(i * thickness),
      SliceThickness: String(thickness),
      PixelSpacing: [spacing, spacing],
      KVP: '120',
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: size,
      Columns: size,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 0,
      RescaleIntercept: '-1024',
      RescaleSlope: '1',
      RescaleType: 'HU',
      WindowCenter: '40',
      WindowWidth: '120',
      PixelData: [pixels.buffer],
    };
    files.push(writeCtPart10(dataset, sopInstanceUid, 'EHR-TESTS'));
  }
  return { studyInstanceUid: opts.studyInstanceUid, seriesInstanceUid, sopInstanceUids, files };
}

/** A fresh DICOM UID (2.25 form, PS3.5 B.2). */
export function newUid(): string {
  return dcmjs.data.DicomMetaDictionary.uid();
}
