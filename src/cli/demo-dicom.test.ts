import dcmjs from 'dcmjs';
import { describe, expect, test } from 'vitest';
import { readDicomInstance } from '../imaging/dicom-instance.ts';
import { ctPhantomSeries, phantomHu, pydicomAvailable, pydicomStudy } from './demo-dicom.ts';

const target = {
  mrn: 'MRN-1',
  accession: 'ACC-1',
  patientName: 'Demo^Ada',
  birthDate: '19700101',
  sex: 'F' as const,
  studyDescription: 'CT head',
};

describe('phantomHu', () => {
  test.each([
    { where: 'outside the head', x: 0.99, y: 0.99, z: 0, hu: -1000 },
    { where: 'skull', x: 0, y: 0.9, z: 0, hu: 800 },
    { where: 'brain', x: 0, y: 0, z: -0.5, hu: 40 },
    { where: 'ventricle', x: 0.22, y: 0, z: 0, hu: 0 },
  ])('$where: $hu HU', ({ x, y, z, hu }) => {
    expect(phantomHu(x, y, z)).toBe(hu);
  });
});

describe('ctPhantomSeries', () => {
  const files = ctPhantomSeries(target, { slices: 3, size: 16 });
  test('one series of readable CT instances for the target', () => {
    expect(files).toHaveLength(3);
    const parsed = files.map((f) => readDicomInstance(f));
    expect(new Set(parsed.map((p) => p.seriesInstanceUid)).size).toBe(1);
    expect(new Set(parsed.map((p) => p.sopInstanceUid)).size).toBe(3);
    for (const p of parsed) {
      expect(p.patientId).toBe('MRN-1');
      expect(p.accessionNumber).toBe('ACC-1');
    }
  });
  test('pixel data of the declared size, positions one slice apart', () => {
    const ds = files.map((f) => {
      const d = dcmjs.data.DicomMessage.readFile(
        f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength) as ArrayBuffer,
      );
      return dcmjs.data.DicomMetaDictionary.naturalizeDataset(d.dict);
    });
    expect((ds[0]!['PixelData'] as ArrayBuffer[])[0]!.byteLength).toBe(16 * 16 * 2);
    const z = ds.map((d) => Number((d['ImagePositionPatient'] as number[])[2]));
    expect(z[1]! - z[0]!).toBe(5);
  });
});

describe.runIf(pydicomAvailable())('pydicomStudy', () => {
  test.each(['CT_small.dcm', 'MR_small.dcm'])('%s rewritten to the target with fresh UIDs', (name) => {
    const [a] = pydicomStudy(name, target);
    const [b] = pydicomStudy(name, target);
    const pa = readDicomInstance(a!);
    const pb = readDicomInstance(b!);
    expect(pa.patientId).toBe('MRN-1');
    expect(pa.accessionNumber).toBe('ACC-1');
    expect(pa.studyInstanceUid).not.toBe(pb.studyInstanceUid);
  });
});
