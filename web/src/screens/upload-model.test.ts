import { describe, expect, test } from 'vitest';
import type { Header } from '../dicom/header.ts';
import { type Expected, summarize, type UFile } from './upload-model.ts';

const EXPECTED: Expected = {
  patientId: 'MRN-1',
  accessionNumber: 'ACC-1',
  patientName: 'Doe^Jane',
  birthDate: '19800203',
};

let id = 0;
function file(h: Partial<Header>, status: UFile['status'] = 'ready'): UFile {
  const header: Header = {
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    sopInstanceUid: `1.2.${++id}`,
    studyInstanceUid: '1.9.1',
    seriesInstanceUid: '1.9.1.1',
    patientName: 'Doe^Jane',
    patientId: 'MRN-1',
    birthDate: '19800203',
    accessionNumber: 'ACC-1',
    studyDate: '20260101',
    modality: 'CT',
    ...h,
  };
  return { id, path: `f${id}`, blob: new Blob([]), header, status, progress: 0, corrections: [] };
}

describe('summarize', () => {
  test.each([
    ['all match', [file({}), file({})], []],
    ['a wrong accession', [file({ accessionNumber: 'WRONG' })], ['accessionNumber']],
    ['names compared case-insensitively, trailing carets ignored', [file({ patientName: 'DOE^JANE^' })], []],
    ['one file of several differs', [file({}), file({ patientId: 'OTHER' })], ['patientId']],
    [
      'everything differs',
      [file({ patientId: 'X', accessionNumber: 'Y', patientName: 'Z', birthDate: '19000101' })],
      ['patientId', 'accessionNumber', 'patientName', 'birthDate'],
    ],
  ])('%s', (_name, files, mismatches) => {
    expect(summarize(files, EXPECTED)[0]?.mismatches).toEqual(mismatches);
  });

  test('groups by study, counts series and instances, lists every distinct value, leaves skipped files out', () => {
    const studies = summarize(
      [
        file({ studyInstanceUid: '1.9.1', seriesInstanceUid: 'a' }),
        file({ studyInstanceUid: '1.9.1', seriesInstanceUid: 'b', patientId: 'OTHER' }),
        file({ studyInstanceUid: '1.9.2', modality: 'MR' }),
        file({ studyInstanceUid: '1.9.3' }, 'skipped'),
      ],
      EXPECTED,
    );
    expect(studies.map((s) => [s.studyInstanceUid, s.series, s.files.length, s.modalities])).toEqual([
      ['1.9.1', 2, 2, ['CT']],
      ['1.9.2', 1, 1, ['MR']],
    ]);
    expect(studies[0]?.values.patientId).toBe('MRN-1 / OTHER');
  });

  test('without an order nothing is a mismatch', () => {
    expect(summarize([file({ patientId: 'X' })], undefined)[0]?.mismatches).toEqual([]);
  });
});
