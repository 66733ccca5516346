import dcmjs from 'dcmjs';
import { describe, expect, test } from 'vitest';
import { makeSeries, newUid, pydicomFile, rewrite } from '../../tests/helpers/dicom.ts';
import {
  DicomAttributeError,
  DicomReadError,
  HEADER_PREFIX_BYTES,
  hasPart10Header,
  isValidUid,
  readDicomInstance,
  UnsupportedTransferSyntaxError,
  zeroPreamble,
} from './dicom-instance.ts';

/**
 * CT_small with a private OB element of `privateBytes` before Pixel Data, and Pixel Data of `pixelBytes` (its own
 * 32 KB when undefined, none when null).
 */
function ctVariant(privateBytes: number, pixelBytes?: number | null): Buffer {
  const f = pydicomFile('CT_small.dcm');
  const dict = dcmjs.data.DicomMessage.readFile(
    f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength) as ArrayBuffer,
  );
  dict.dict['00290010'] = { vr: 'LO', Value: ['EHR TEST'] };
  dict.dict['00291010'] = { vr: 'OB', Value: [new Uint8Array(privateBytes).fill(0x7f).buffer] };
  if (pixelBytes === null) delete dict.dict['7FE00010'];
  else if (pixelBytes !== undefined) dict.dict['7FE00010'] = { vr: 'OW', Value: [new ArrayBuffer(pixelBytes)] };
  return Buffer.from(dict.write());
}

/** The bytes split into chunks of `size` (as a multipart part arrives). */
const split = (b: Buffer, size: number) =>
  Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size));

describe('readDicomInstance on real files', () => {
  test.each([
    ['CT_small.dcm', '1CT1', 'CT', '1.2.840.10008.1.2.1'],
    ['MR_small.dcm', '4MR1', 'MR', '1.2.840.10008.1.2.1'],
    ['MR_small_implicit.dcm', '4MR1', 'MR', '1.2.840.10008.1.2'],
    ['MR_small_bigendian.dcm', '4MR1', 'MR', '1.2.840.10008.1.2.2'],
    ['JPEG2000.dcm', undefined, undefined, '1.2.840.10008.1.2.4.91'],
    ['MR_small_RLE.dcm', '4MR1', 'MR', '1.2.840.10008.1.2.5'],
  ])('%s', (file, patientId, modality, ts) => {
    const inst = readDicomInstance(pydicomFile(file));
    if (patientId) expect(inst.patientId).toBe(patientId);
    if (modality) expect(inst.modality).toBe(modality);
    expect(inst.transferSyntaxUid).toBe(ts);
    for (const uid of [inst.sopClassUid, inst.sopInstanceUid, inst.studyInstanceUid, inst.seriesInstanceUid]) {
      expect(isValidUid(uid)).toBe(true);
    }
  });

  test('CT_small: the attributes the EHR keeps', () => {
    expect(readDicomInstance(pydicomFile('CT_small.dcm'))).toMatchObject({
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322',
      studyInstanceUid: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
      seriesNumber: 1,
      instanceNumber: 1,
      studyDate: '20040119',
      studyTime: '072730',
      timezoneOffset: '-0500',
    });
    expect(readDicomInstance(pydicomFile('CT_small.dcm')).accessionNumber).toBeUndefined();
  });

  test('a dcmjs-generated series carries the given keys', () => {
    const s = makeSeries({ patientId: 'MRN-1', accession: 'ACC-1', count: 3 });
    const read = s.files.map((f) => readDicomInstance(f));
    expect(read.map((r) => [r.patientId, r.accessionNumber, r.studyInstanceUid, r.instanceNumber])).toEqual([
      ['MRN-1', 'ACC-1', s.studyUid, 1],
      ['MRN-1', 'ACC-1', s.studyUid, 2],
      ['MRN-1', 'ACC-1', s.studyUid, 3],
    ]);
    expect(read.map((r) => r.sopInstanceUid)).toEqual(s.sopUids);
  });
});

describe('header read from a prefix, whole instance as the fallback', () => {
  const ct = pydicomFile('CT_small.dcm');
  const expected = readDicomInstance(ct);
  test.each([
    ['a small instance', ctVariant(1000)],
    ['a header inside the prefix, Pixel Data past it', ctVariant(1000, 4 * HEADER_PREFIX_BYTES)],
    ['a header longer than the prefix', ctVariant(HEADER_PREFIX_BYTES + 5000, 200_000)],
    ['no Pixel Data, longer than the prefix', ctVariant(HEADER_PREFIX_BYTES * 2, null)],
  ])('%s: the same attributes, from a buffer and from chunks', (_name, file) => {
    expect(file.length).toBeGreaterThan(1000);
    expect(readDicomInstance(file)).toEqual(expected);
    for (const size of [7, 131, 4096, 65536]) expect(readDicomInstance(split(file, size))).toEqual(expected);
  });

  test.each([-8, -6, -4, -2, 0, 2])(
    'the Pixel Data tag at %i bytes from the end of the prefix (elements have even lengths)',
    (shift) => {
      const pixelTag = (f: Buffer) => f.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
      const base = pixelTag(ctVariant(1000, 10)) - 1000;
      const file = ctVariant(HEADER_PREFIX_BYTES + shift - base, 200_000);
      expect(pixelTag(file)).toBe(HEADER_PREFIX_BYTES + shift);
      expect(readDicomInstance(file)).toEqual(expected);
      expect(readDicomInstance(split(file, 1000))).toEqual(expected);
    },
  );

  test('chunks that are not DICOM are refused like a buffer', () => {
    expect(() => readDicomInstance(split(Buffer.from('not DICOM '.repeat(20)), 50))).toThrow(DicomReadError);
    expect(() => readDicomInstance([])).toThrow(DicomReadError);
    expect(() => readDicomInstance(split(ct.subarray(0, 300), 64))).toThrow(DicomReadError);
  });
});

test('a real deflated file without PatientID is refused for that attribute', () => {
  expect(() => readDicomInstance(pydicomFile('image_dfl.dcm'))).toThrow(/missing required attribute PatientID/);
});

describe('unreadable input', () => {
  const ct = pydicomFile('CT_small.dcm');
  test.each([
    ['empty', Buffer.alloc(0)],
    ['text', Buffer.from('hello, this is not DICOM at all'.repeat(10))],
    ['no preamble (raw data set)', pydicomFile('no_meta.dcm')],
    ['DICM but truncated meta', Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([2, 0, 0])])],
    ['truncated after the meta header', ct.subarray(0, 300)],
  ])('%s → DicomReadError', (_name, bytes) => {
    expect(() => readDicomInstance(bytes)).toThrow(DicomReadError);
  });
});

describe('required attributes', () => {
  const ct = pydicomFile('CT_small.dcm');
  test.each([
    ['SOPClassUID', { SOPClassUID: null }],
    ['SOPInstanceUID', { SOPInstanceUID: null }],
    ['StudyInstanceUID', { StudyInstanceUID: null }],
    ['SeriesInstanceUID', { SeriesInstanceUID: null }],
    ['PatientID', { PatientID: null }],
    ['PatientID', { PatientID: '   ' }],
    ['StudyInstanceUID', { StudyInstanceUID: '1.2.03' }],
    ['SeriesInstanceUID', { SeriesInstanceUID: 'abc' }],
  ] as const)('%s: %j', (attr, change) => {
    const err = (() => {
      try {
        readDicomInstance(rewrite(ct, change));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DicomAttributeError);
    expect((err as DicomAttributeError).attributes).toContain(attr);
  });
});

describe('UIDs and preamble', () => {
  test.each([
    ['1.2.840.10008.1.2', true],
    [newUid(), true],
    ['1', false],
    ['1.02', false],
    ['1..2', false],
    ['1.2.', false],
    ['1.2.3a', false],
    [`1.${'1'.repeat(63)}`, false],
  ])('isValidUid(%j) = %s', (uid, ok) => expect(isValidUid(uid)).toBe(ok));

  test('zeroPreamble clears exactly the first 128 bytes and keeps the file readable', () => {
    const f = Buffer.from(pydicomFile('CT_small.dcm'));
    f.fill(0x41, 0, 128); // a polyglot-style preamble
    const before = Buffer.from(f);
    const z = zeroPreamble(f);
    expect(z).toBe(f);
    expect(z.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(z.subarray(128)).toEqual(before.subarray(128));
    expect(hasPart10Header(z)).toBe(true);
    expect(readDicomInstance(z).patientId).toBe('1CT1');
    expect(zeroPreamble(Buffer.from([1, 2, 3]))).toEqual(Buffer.from([0, 0, 0]));
  });

  test('zeroPreamble over chunks clears the first 128 bytes across them, in place', () => {
    const f = Buffer.from(pydicomFile('CT_small.dcm'));
    f.fill(0x41, 0, 128);
    const before = Buffer.from(f);
    const chunks = split(f, 50);
    expect(zeroPreamble(chunks)).toBe(chunks);
    expect(f.subarray(0, 128).every((b) => b === 0)).toBe(true);
    expect(f.subarray(128)).toEqual(before.subarray(128));
    expect(readDicomInstance(chunks).patientId).toBe('1CT1');
  });
});

describe('readDicomInstance: values checked before storing', () => {
  const ct = pydicomFile('CT_small.dcm');
  const edit = (edits: (d: ReturnType<typeof dcmjs.data.DicomMessage.readFile>) => void) => {
    const d = dcmjs.data.DicomMessage.readFile(
      ct.buffer.slice(ct.byteOffset, ct.byteOffset + ct.byteLength) as ArrayBuffer,
    );
    edits(d);
    return Buffer.from(d.write());
  };

  test('reads the demographics compared with the EHR', () => {
    expect(readDicomInstance(ct)).toMatchObject({ patientName: 'CompressedSamples^CT1', patientSex: 'O' });
  });

  test.each<[string, (d: ReturnType<typeof dcmjs.data.DicomMessage.readFile>) => void, unknown, RegExp]>([
    [
      'unknown transfer syntax',
      (d) => (d.meta['00020010'] = { vr: 'UI', Value: ['1.2.3.4'] }),
      UnsupportedTransferSyntaxError,
      /not supported/,
    ],
    [
      'empty transfer syntax',
      (d) => (d.meta['00020010'] = { vr: 'UI', Value: [''] }),
      UnsupportedTransferSyntaxError,
      /empty/,
    ],
    ['two PatientIDs', (d) => (d.dict['00100020'] = { vr: 'LO', Value: ['A', 'B'] }), DicomAttributeError, /PatientID/],
    [
      'meta SOP Instance UID of another instance',
      (d) => (d.meta['00020003'] = { vr: 'UI', Value: ['1.2.3.4'] }),
      DicomAttributeError,
      /MediaStorageSOPInstanceUID .* differs/,
    ],
    [
      'NUL in AccessionNumber',
      (d) => (d.dict['00080050'] = { vr: 'SH', Value: ['A\0B'] }),
      DicomAttributeError,
      /AccessionNumber .* NUL/,
    ],
  ])('%s is refused', (_name, change, type, message) => {
    const bytes = edit(change);
    expect(() => readDicomInstance(bytes)).toThrow(type as new () => Error);
    expect(() => readDicomInstance(bytes)).toThrow(message);
  });
});
