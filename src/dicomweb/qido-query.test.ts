import { describe, expect, test } from 'vitest';
import { BadDicomWebRequestError } from './errors.ts';
import { INCLUDE_ALL } from './qido/include-all.ts';
import {
  nonAsciiAsWildcard,
  orthancEncode,
  orthancQueryString,
  parseQidoQuery,
  parseUidList,
  resolveAttribute,
} from './qido-query.ts';

const reject = (qs: string, reason: RegExp) => {
  let err: unknown;
  try {
    parseQidoQuery(qs, 'study');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BadDicomWebRequestError);
  expect((err as Error).message).toMatch(reason);
};

describe('resolveAttribute', () => {
  test.each([
    ['PatientName', { tag: '00100010', vr: 'PN' }],
    ['00100010', { tag: '00100010', vr: 'PN' }],
    ['0020000d', { tag: '0020000D', vr: 'UI' }],
    ['StudyDate', { tag: '00080020', vr: 'DA' }],
    ['ModalitiesInStudy', { tag: '00080061', vr: 'CS' }],
    ['NoSuchKeyword', undefined],
    ['constructor', undefined],
    ['0011ABCD', { tag: '0011ABCD', vr: 'UN' }],
    ['00091001', { tag: '00091001', vr: 'UN' }],
    ['7fe0ffff', { tag: '7FE0FFFF', vr: 'UN' }],
    ['0009100', undefined],
    ['0009100G', undefined],
    ['1234', undefined],
  ])('%s', (key, expected) => {
    expect(resolveAttribute(key)).toEqual(expected);
  });
});

describe('parseQidoQuery: 400 with a reason for bad input', () => {
  test.each([
    ['foo=bar', /Unsupported query parameter "foo"/],
    ['limit=abc', /limit must be an integer/],
    ['limit=0', /limit must be an integer >= 1/],
    ['limit=-1', /limit/],
    ['offset=1.5', /offset must be an integer/],
    ['limit=1&limit=2', /limit is given more than once/],
    ['PatientID=a&00100020=b', /given more than once/],
    ['fuzzymatching=yes', /fuzzymatching must be true or false/],
    ['includefield=NoSuchThing', /includefield: unknown attribute "NoSuchThing"/],
    ['includefield=0009100', /includefield: unknown attribute "0009100"/],
    ['00091001=a%5Cb', /backslashes are not allowed/],
    ['includefield=PatientName,,', /includefield: unknown attribute ""/],
    ['StudyDate=2020', /StudyDate: "2020" is not a valid DA/],
    ['StudyDate=20201341', /not a valid date/],
    ['StudyDate=20200102-20200101', /range start is after its end/],
    ['StudyDate=-', /not a valid DA/],
    ['StudyTime=25x', /not a valid TM/],
    ['StudyTime=1230.5', /not a valid TM/],
    ['StudyInstanceUID=1.2.*', /do not support wildcard/],
    ['StudyInstanceUID=1.2.abc', /not a valid UID/],
    ['StudyInstanceUID=1.02.3', /not a valid UID/],
    ['SeriesInstanceUID=1.2,x', /SeriesInstanceUID: "x" is not a valid UID/],
    ['PatientName=a%5Cb', /backslashes are not allowed/],
    ['PatientName=a%00b', /control characters/],
    [`PatientID=${'x'.repeat(1025)}`, /longer than 1024/],
    ['00400275.0020000D=1.2', /nested \(sequence\) matching is not supported/],
    ['PixelData=1', /VR ox/],
    ['NumberOfStudyRelatedSeries=abc', /not a number/],
    ['access_token=abc', /Authorization header/],
  ])('%s', (qs, reason) => reject(qs, reason));
});

describe('parseQidoQuery: accepted forms', () => {
  test.each([
    ['', { match: [], includeFields: [], offset: 0, fuzzy: false }],
    ['PatientName=*', { match: [['00100010', '*']] }],
    ['00100020=*x*', { match: [['00100020', '*x*']] }],
    ['PatientName=M%C3%BCller*', { match: [['00100010', 'M*ller*']] }],
    ['StudyDate=20200101-', { match: [['00080020', '20200101-']] }],
    ['StudyDate=-20200101', { match: [['00080020', '-20200101']] }],
    ['StudyDate=19000101-20991231', { match: [['00080020', '19000101-20991231']] }],
    ['StudyTime=0800-123000.5', { match: [['00080030', '0800-123000.5']] }],
    ['AcquisitionDateTime=2020-20210101120000', { match: [['0008002A', '2020-20210101120000']] }],
    ['ModalitiesInStudy=CT,MR', { match: [['00080061', 'CT,MR']] }],
    ['StudyInstanceUID=1.2.3,1.2.4,1.2.3', { studyUids: ['1.2.3', '1.2.4'] }],
    ['0020000D=1.2.3', { studyUids: ['1.2.3'] }],
    ['StudyInstanceUID=*', { match: [['0020000D', '*']] }],
    ['SeriesInstanceUID=1.2,1.3', { match: [['0020000E', '1.2,1.3']] }],
    ['limit=101&offset=0&fuzzymatching=false', { limit: 101, offset: 0, fuzzy: false }],
    ['fuzzymatching=true&offset=7', { fuzzy: true, offset: 7 }],
    ['PatientName=', { match: [['00100010', '']] }],
    ['00091001=abc*', { match: [['00091001', 'abc*']] }],
    ['00091001=M%C3%BCller', { match: [['00091001', 'M*ller']] }],
  ])('%s', (qs, expected) => {
    expect(parseQidoQuery(qs, 'study')).toMatchObject(expected);
  });
});

describe('includefield: repeated, comma and all forms merge into one tag set', () => {
  test.each([
    ['includefield=00081030&includefield=00080060', 'study', ['00081030', '00080060']],
    ['includefield=00081030%2C00080060', 'study', ['00081030', '00080060']],
    ['includefield=StudyDescription,Modality&includefield=00081030', 'study', ['00081030', '00080060']],
    ['includefield=all', 'study', INCLUDE_ALL.study],
    ['includefield=all', 'series', INCLUDE_ALL.series],
    ['includefield=all,00081030', 'instance', INCLUDE_ALL.instance],
    ['includefield=00091001&includefield=0009abcd,PatientName', 'study', ['00091001', '0009ABCD', '00100010']],
  ] as const)('%s at %s level', (qs, level, tags) => {
    expect(new Set(parseQidoQuery(qs, level).includeFields)).toEqual(new Set(tags));
  });

  test('all at series level contains study and series attributes, instance level also instance ones', () => {
    expect(INCLUDE_ALL.series).toEqual(expect.arrayContaining(['00081030', '0008103E']));
    expect(INCLUDE_ALL.instance).toEqual(expect.arrayContaining(['00081030', '0008103E', '00280010']));
  });
});

describe('orthancQueryString', () => {
  const q = parseQidoQuery(
    'PatientName=A*&includefield=StudyDescription,Modality&limit=3&offset=2&StudyInstanceUID=1.2,1.3',
    'study',
  );
  test.each([
    [
      'caller constraint and paging kept',
      {},
      '0020000D=1.2,1.3&00100010=A*&includefield=00081030&includefield=00080060&limit=3&offset=2',
    ],
    [
      'access list replaces the UID constraint',
      { studyUids: ['9.9'] },
      '0020000D=9.9&00100010=A*&includefield=00081030&includefield=00080060&limit=3&offset=2',
    ],
    [
      'chunk mode: no paging, sort keys included',
      { studyUids: ['9.9'], paging: null, extraInclude: ['0020000D'] },
      '0020000D=9.9&00100010=A*&includefield=00081030&includefield=00080060&includefield=0020000D',
    ],
  ] as const)('%s', (_name, opts, expected) => {
    expect(orthancQueryString(q, opts)).toBe(expected);
  });

  test('repeated includefield reaches Orthanc once per tag, never as a comma list', () => {
    const s = orthancQueryString(parseQidoQuery('includefield=00081030%2C00080060&includefield=00081030', 'study'));
    expect(s).toBe('includefield=00081030&includefield=00080060');
  });
});

describe('UID lists and non-ASCII values', () => {
  test.each([
    ['1.2.3', ['1.2.3']],
    ['1.2.3,1.2.4', ['1.2.3', '1.2.4']],
    ['1.2.3\\1.2.4', ['1.2.3', '1.2.4']],
    [' 1.2.3 , 1.2.4', ['1.2.3', '1.2.4']],
    ['1.2.3,1.2.3', ['1.2.3']],
  ])('%s', (value, uids) => {
    expect(parseUidList(value)).toEqual(uids);
  });

  test.each([
    ['', /not a valid UID/],
    ['1.2,', /not a valid UID/],
    [`1.${'2'.repeat(70)}`, /not a valid UID/],
    [Array.from({ length: 1001 }, (_, i) => `1.${i}`).join(','), /at most 1000/],
  ])('rejects %#', (value, reason) => {
    expect(() => parseUidList(value)).toThrow(reason);
  });

  test.each([
    ['Müller', 'M*ller'],
    ['Müller*', 'M*ller*'],
    ['Ærø^Åse', '*r*^*se'],
    ['山田^太郎', '*^*'],
    ['plain^ascii?', 'plain^ascii?'],
  ])('%s', (value, wildcarded) => {
    expect(nonAsciiAsWildcard(value)).toBe(wildcarded);
  });
});

describe('orthancEncode: only what must be encoded (Orthanc does not percent-decode most values)', () => {
  test.each([
    ['1.2,1.3', '1.2,1.3'],
    ['Doe^John*', 'Doe^John*'],
    ['application/dicom', 'application/dicom'],
    ['a b', 'a%20b'],
    ['a&b=c+d#e%f', 'a%26b%3Dc%2Bd%23e%25f'],
    ['Ærø', '%C3%86r%C3%B8'],
  ])('%s', (value, encoded) => {
    expect(orthancEncode(value)).toBe(encoded);
  });
});
