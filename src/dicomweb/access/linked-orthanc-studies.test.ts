import { describe, expect, test } from 'vitest';
import { orthancId } from '../../orthanc/orthanc-ids.ts';
import {
  isLinkedAnswer,
  isPlainPatientId,
  keepLinked,
  type LinkedStudy,
  linkedQuery,
  linkedStudy,
} from './linked-orthanc-studies.ts';
import { orthancQueryString, parseQidoQuery } from '../qido-query.ts';
import { seriesCacheKey } from '../cache/series-cache.ts';

const id = (patientId: string, study: string) => orthancId({ patientId, study });
const byIdentifiers = (uid: string, ...ids: string[]) => linkedStudy(uid, null, ids) as LinkedStudy;

/** 1.x: A's (MRN-A), 2.1: C's (MRN-C), 3.1: MRN with a space, 4.1: recorded Orthanc study of another PatientID (a
 * study moved to this patient through FHIR), 5.1: a patient with two identifiers. */
const linked = new Map<string, LinkedStudy>([
  ['1.1', byIdentifiers('1.1', 'MRN-A')],
  ['1.2', linkedStudy('1.2', id('MRN-A', '1.2'), ['MRN-A']) as LinkedStudy],
  ['2.1', byIdentifiers('2.1', 'MRN-C')],
  ['3.1', byIdentifiers('3.1', 'MRN 7')],
  ['4.1', linkedStudy('4.1', id('OLD-MRN', '4.1'), ['MRN-A']) as LinkedStudy],
  ['5.1', byIdentifiers('5.1', 'MRN-A', 'EXT-9')],
]);

const answer = (uid: string | undefined, patientId: string | undefined) => ({
  ...(uid === undefined ? {} : { '0020000D': { vr: 'UI', Value: [uid] } }),
  ...(patientId === undefined ? {} : { '00100020': { vr: 'LO', Value: [patientId] } }),
});

describe('linkedStudy: the Orthanc studies of an ImagingStudy row', () => {
  test.each([
    ['recorded id, the MRN names it', id('M', '9.9'), ['M', 'X'], [id('M', '9.9')], ['M']],
    ['recorded id, no identifier names it (moved, MRN changed)', id('OLD', '9.9'), ['M'], [id('OLD', '9.9')], []],
    ['no recorded id: every identifier', null, ['M', 'X', 'M', ''], [id('M', '9.9'), id('X', '9.9')], ['M', 'X']],
  ])('%s', (_name, recorded, identifiers, orthancIds, patientIds) => {
    expect(linkedStudy('9.9', recorded, identifiers)).toEqual({ orthancIds: new Set(orthancIds), patientIds });
  });

  test('no recorded id and no identifier: nothing', () => {
    expect(linkedStudy('9.9', null, ['', ''])).toBeUndefined();
  });
});

describe('isPlainPatientId: sent to Orthanc as an exact matching key', () => {
  test.each([
    ['MRN-0000042', true],
    ['A.B_C:D/E^F', true],
    ['', false],
    ['MRN*', false],
    ['MRN?', false],
    ['A\\B', false],
    ['A,B', false],
    ['MRN 7', false],
    ['MRN%41', false],
    ['Müller', false],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
  ])('%s → %s', (value, plain) => {
    expect(isPlainPatientId(value)).toBe(plain);
  });
});

describe('linkedQuery: the Orthanc query of a restricted search', () => {
  const both = 'includefield=0020000D&includefield=00100020';
  test.each([
    ['one PatientID: a matching key', '', ['1.1', '1.2'], '0020000D=1.1,1.2&00100020=MRN-A&includefield=0020000D'],
    ['two patients: only included', '', ['1.1', '2.1'], `0020000D=1.1,2.1&${both}`],
    [
      'the caller gives a PatientID: kept, ours only included',
      'PatientID=MRN-*',
      ['1.1'],
      `0020000D=1.1&00100020=MRN-*&${both}`,
    ],
    ['a PatientID Orthanc would not match exactly', '', ['3.1'], `0020000D=3.1&${both}`],
    ['a recorded study whose PatientID is unknown', '', ['4.1'], `0020000D=4.1&${both}`],
    ['a patient with two identifiers', '', ['5.1'], `0020000D=5.1&${both}`],
    [
      'the caller’s other keys and paging stay',
      'Modality=CT&limit=5&offset=2',
      ['2.1'],
      '0020000D=2.1&00080060=CT&00100020=MRN-C&includefield=0020000D&limit=5&offset=2',
    ],
  ])('%s', (_name, qs, uids, expected) => {
    const { query, include } = linkedQuery(parseQidoQuery(qs, 'series'), uids, linked);
    expect(orthancQueryString(query, { studyUids: uids, extraInclude: include })).toBe(expected);
  });
});

describe('isLinkedAnswer / keepLinked: only answers of the linked Orthanc studies', () => {
  test.each([
    ['the linked pair', answer('1.1', 'MRN-A'), true],
    ['the recorded study, by its PatientID', answer('1.2', 'MRN-A'), true],
    ['the recorded study of an unknown PatientID, by its Orthanc id', answer('4.1', 'OLD-MRN'), true],
    ['the current MRN under a study recorded with another PatientID', answer('4.1', 'MRN-A'), false],
    ['either identifier of a two-identifier patient', answer('5.1', 'EXT-9'), true],
    ['another PatientID under a linked UID', answer('1.1', 'MRN-B'), false],
    ['the linked MRN in another case', answer('1.1', 'mrn-a'), false],
    ['the linked MRN with a trailing space', answer('1.1', 'MRN-A '), false],
    ["another linked patient's MRN under the UID", answer('1.1', 'MRN-C'), false],
    ['an unlinked UID', answer('9.9', 'MRN-A'), false],
    ['no PatientID', answer('1.1', undefined), false],
    ['no StudyInstanceUID', answer(undefined, 'MRN-A'), false],
    ['an empty PatientID element', { '0020000D': { Value: ['1.1'] }, '00100020': {} }, false],
  ])('%s → %s', (_name, item, ok) => {
    expect(isLinkedAnswer(item, linked)).toBe(ok);
  });

  test('keeps the order of the allowed answers and counts the others', () => {
    const items = [answer('1.1', 'MRN-A'), answer('1.1', 'X'), answer('2.1', 'MRN-C'), answer('2.1', 'MRN-A')];
    expect(keepLinked(items, linked)).toEqual({ kept: [items[0], items[2]], withheld: 2 });
  });
});

test('a series answer filtered to linked studies is cached under its own key', () => {
  const k = { study: '1.1', series: '1.1.1', kind: 'instances', accept: '', publicRoot: '/dicom-web' } as const;
  const keys = [
    seriesCacheKey(k),
    seriesCacheKey({ ...k, linkedTo: id('MRN-A', '1.1') }),
    seriesCacheKey({ ...k, linkedTo: id('MRN-C', '1.1') }),
  ];
  expect(new Set(keys).size).toBe(3);
});
