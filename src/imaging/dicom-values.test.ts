import { describe, expect, test } from 'vitest';
import { datasetProblems, orthancValueProblems, transferSyntaxProblem } from './dicom-values.ts';

describe('datasetProblems', () => {
  test.each<[string, Record<string, { vr: string; Value?: unknown[] }>, RegExp | null]>([
    ['plain values', { '00100020': { vr: 'LO', Value: ['MRN-1'] }, '00080050': { vr: 'SH', Value: ['ACC'] } }, null],
    [
      'PatientID with two values',
      { '00100020': { vr: 'LO', Value: ['MRN', 'OTHER'] } },
      /^PatientID \(0010,0020\) has 2/,
    ],
    ['AccessionNumber with two values', { '00080050': { vr: 'SH', Value: ['A', 'B'] } }, /^AccessionNumber/],
    ['StudyInstanceUID with two values', { '0020000D': { vr: 'UI', Value: ['1.2', '1.3'] } }, /^StudyInstanceUID/],
    ['SeriesInstanceUID with two values', { '0020000E': { vr: 'UI', Value: ['1.2', '1.3'] } }, /^SeriesInstanceUID/],
    ['SOPInstanceUID with two values', { '00080018': { vr: 'UI', Value: ['1.2', '1.3'] } }, /^SOPInstanceUID/],
    ['a trailing empty value is not a second one', { '00100020': { vr: 'LO', Value: ['MRN', ''] } }, null],
    ['ImageType may have several values', { '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY'] } }, null],
    ['NUL inside AccessionNumber', { '00080050': { vr: 'SH', Value: ['AC\0C'] } }, /^AccessionNumber .* NUL/],
    ['NUL inside a description', { '00081030': { vr: 'LO', Value: ['x\0'] } }, /^StudyDescription .* NUL/],
    ['NUL padding of a UID', { '0020000D': { vr: 'UI', Value: ['1.2.3\0'] } }, null],
    [
      'replacement character under UTF-8',
      { '00080005': { vr: 'CS', Value: ['ISO_IR 192'] }, '00100010': { vr: 'PN', Value: [{ Alphabetic: 'S\uFFFD' }] } },
      /^PatientName \(0010,0010\) is not valid UTF-8/,
    ],
    [
      'PN of 64 per group',
      { '00100010': { vr: 'PN', Value: [{ Alphabetic: 'a'.repeat(64), Ideographic: 'b' }] } },
      null,
    ],
    [
      'PN too long',
      { '00100010': { vr: 'PN', Value: [{ Alphabetic: 'a'.repeat(65) }] } },
      /^PatientName .* longer than 64/,
    ],
    ['SH up to 64', { '00080050': { vr: 'SH', Value: ['a'.repeat(64)] } }, null],
    ['SH over 64', { '00080050': { vr: 'SH', Value: ['a'.repeat(65)] } }, /^AccessionNumber .* longer than 64/],
    ['long LT is fine', { '00204000': { vr: 'LT', Value: ['a'.repeat(5000)] } }, null],
    [
      'an element the facade does not read is not length-bounded',
      { '00081040': { vr: 'LO', Value: ['a'.repeat(90)] } },
      null,
    ],
    ['private elements are left alone', { '00091001': { vr: 'LO', Value: ['a\0b'] } }, null],
    ['unnamed standard element named by tag', { '00081040': { vr: 'LO', Value: ['a\0b'] } }, /^\(0008,1040\) contains/],
  ])('%s', (_name, ds, want) => {
    const got = datasetProblems(ds);
    if (want === null) expect(got).toEqual([]);
    else expect(got[0]).toMatch(want);
  });
});

describe('orthancValueProblems', () => {
  test.each<[string, Record<string, unknown>, RegExp | null]>([
    ['plain', { '0010,0020': 'MRN', '0008,0008': 'ORIGINAL\\PRIMARY' }, null],
    ['PatientID with two values', { '0010,0020': 'MRN\\OTHER' }, /^PatientID .* several values/],
    ['NUL', { '0008,0050': 'A\0B' }, /^AccessionNumber .* NUL/],
    ['long name', { '0010,0010': 'x'.repeat(100) }, /^PatientName .* longer than 64/],
    ['sequences and nulls are skipped', { '0008,1140': [{}], '0010,1010': null }, null],
  ])('%s', (_name, tags, want) => {
    const got = orthancValueProblems(tags);
    if (want === null) expect(got).toEqual([]);
    else expect(got[0]).toMatch(want);
  });
});

test.each([
  ['1.2.840.10008.1.2', undefined],
  ['1.2.840.10008.1.2.1', undefined],
  ['1.2.840.10008.1.2.4.50', undefined],
  ['1.2.840.10008.1.2.4.90', undefined],
  ['1.2.840.10008.1.2.5', undefined],
  ['', /empty/],
  [undefined, /empty/],
  ['1.2.3.4', /not supported/],
  ['1.2.840.10008.1.2.4.201', /not supported/],
])('transfer syntax %s', (uid, want) => {
  const got = transferSyntaxProblem(uid);
  if (want === undefined) expect(got).toBeUndefined();
  else expect(got).toMatch(want);
});
