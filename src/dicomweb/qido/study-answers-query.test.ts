import { describe, expect, test } from 'vitest';
import {
  conditionSql,
  DEFAULT_STUDY_TAGS,
  type IndexCondition,
  likePattern,
  matchingColumns,
  normalizeIdentifier,
  planIndexQuery,
  projectAnswer,
} from './study-answers-query.ts';
import { parseQidoQuery } from '../qido-query.ts';

const plan = (qs: string) => planIndexQuery(parseQidoQuery(qs, 'study'));

describe('normalizeIdentifier (Orthanc: ASCII only, % and _ as spaces, upper case, trimmed)', () => {
  test.each([
    ['Müller^Anna', 'MLLER^ANNA'],
    ['mrn-a-1', 'MRN-A-1'],
    ['  head ct  ', 'HEAD CT'],
    ['a_b%c', 'A B C'],
    ['x\ty', 'XY'],
    ['', ''],
    ['*ct?', '*CT?'],
  ])('%j → %j', (input, expected) => {
    expect(normalizeIdentifier(input)).toBe(expected);
  });
});

describe('planIndexQuery: the conditions of queries the index answers', () => {
  test.each<[string, IndexCondition[]]>([
    ['', []],
    ['PatientID=mrn-1', [{ kind: 'text', column: 'patient_id', op: 'eq', value: 'MRN-1' }]],
    ['00100020=MRN*', [{ kind: 'text', column: 'patient_id', op: 'like', value: 'MRN*' }]],
    ['PatientName=m%C3%BCller*', [{ kind: 'text', column: 'patient_name', op: 'like', value: 'M*LLER*' }]],
    ['PatientName=B?rg^Bob', [{ kind: 'text', column: 'patient_name', op: 'like', value: 'B?RG^BOB' }]],
    ['AccessionNumber=acc1', [{ kind: 'text', column: 'accession_number', op: 'eq', value: 'ACC1' }]],
    ['StudyDescription=*ct*', [{ kind: 'text', column: 'study_description', op: 'like', value: '*CT*' }]],
    ['StudyDate=20190301', [{ kind: 'date', from: '20190301', to: '20190301' }]],
    ['StudyDate=20190101-20191231', [{ kind: 'date', from: '20190101', to: '20191231' }]],
    ['StudyDate=-20191231', [{ kind: 'date', to: '20191231' }]],
    ['StudyDate=20191231-', [{ kind: 'date', from: '20191231' }]],
    ['ModalitiesInStudy=ct', [{ kind: 'modality', op: 'eq', value: 'CT' }]],
    ['ModalitiesInStudy=C*', [{ kind: 'modality', op: 'like', value: 'C*' }]],
    ['PatientName=&StudyID=&AccessionNumber=', []],
    ['StudyDescription=*', [{ kind: 'text', column: 'study_description', op: 'like', value: '*' }]],
    [
      'PatientID=X&StudyDate=20200101-',
      [
        { kind: 'text', column: 'patient_id', op: 'eq', value: 'X' },
        { kind: 'date', from: '20200101' },
      ],
    ],
  ])('%s', (qs, conditions) => {
    const p = plan(qs);
    expect(p.kind).toBe('index');
    if (p.kind === 'index') expect(p.conditions).toEqual(conditions);
  });

  test.each([
    ['fuzzymatching=true&PatientName=a*', /fuzzy/],
    ['StudyTime=1200', /matching on 00080030/],
    ['PatientSex=O', /matching on 00100040/],
    ['StudyID=S1', /matching on 00200010/],
    ['StudyID=*', /matching on 00200010/],
    ['StudyDate=*', /matching on 00080020/],
    ['SeriesDescription=x', /matching key 0008103E/],
    ['includefield=SeriesDescription', /includefield 0008103E/],
    ['StudyDescription=head%20ct', /needs encoding/],
    ['ModalitiesInStudy=CT,MR', /needs encoding/],
    ['PatientID=a%2Bb', /needs encoding/],
  ])('%s goes to Orthanc', (qs, reason) => {
    const p = plan(qs);
    expect(p.kind).toBe('orthanc');
    if (p.kind === 'orthanc') expect(p.reason).toMatch(reason);
  });

  test.each([
    ['', DEFAULT_STUDY_TAGS],
    ['includefield=00081030&includefield=ModalitiesInStudy', [...DEFAULT_STUDY_TAGS, '00081030']],
    ['StudyDescription=*', [...DEFAULT_STUDY_TAGS, '00081030']],
    ['InstitutionName=&limit=2&offset=1', [...DEFAULT_STUDY_TAGS, '00080080']],
  ])('%s returns the defaults, matching keys and includefields', (qs, tags) => {
    const p = plan(qs);
    if (p.kind !== 'index') throw new Error('expected an index plan');
    expect([...p.tags].sort()).toEqual([...new Set(tags)].sort());
  });

  test('paging and the UID list pass through', () => {
    const p = plan('StudyInstanceUID=1.2.3,1.2.4&limit=5&offset=10');
    expect(p).toMatchObject({ kind: 'index', limit: 5, offset: 10, studyUids: ['1.2.3', '1.2.4'] });
  });
});

describe('conditionSql: values are bound parameters, never SQL text', () => {
  test.each<[IndexCondition, RegExp, unknown[]]>([
    [
      { kind: 'text', column: 'patient_id', op: 'eq', value: "X'; DROP" },
      /^"a"\."patient_id" = \$slonik_1$/,
      ["X'; DROP"],
    ],
    [
      { kind: 'text', column: 'patient_name', op: 'like', value: 'M*LL?R' },
      /"patient_name" LIKE \$slonik_1/,
      ['M%LL_R'],
    ],
    [
      { kind: 'date', from: '20190101', to: '20191231' },
      /study_date >= \$slonik_1 AND a\.study_date <= \$slonik_2/,
      ['20190101', '20191231'],
    ],
    [{ kind: 'date', to: '20191231' }, /^\(a\.study_date IS NOT NULL AND a\.study_date <= \$slonik_1\)$/, ['20191231']],
    [{ kind: 'modality', op: 'eq', value: 'CT' }, /^\$slonik_1 = ANY\(a\.modalities\)$/, ['CT']],
    [{ kind: 'modality', op: 'like', value: 'C*' }, /m LIKE \$slonik_1/, ['C%']],
  ])('%j', (c, text, values) => {
    const f = conditionSql(c);
    expect(f.sql).toMatch(text);
    expect(f.values).toEqual(values);
  });

  test.each([
    ['A*B?', 'A%B_'],
    ['100%_\\', '100\\%\\_\\\\'],
  ])('likePattern(%j) = %j', (v, expected) => {
    expect(likePattern(v)).toBe(expected);
  });
});

describe('matchingColumns and projectAnswer', () => {
  const stored = {
    '00080020': { vr: 'DA', Value: ['20190301'] },
    '00080050': { vr: 'SH' },
    '00080061': { vr: 'CS', Value: ['CT', 'mr'] },
    '00080080': { vr: 'LO', Value: ['Hospital'] },
    '00081030': { vr: 'LO', Value: ['Head CT'] },
    '00081190': { vr: 'UR', Value: ['http://orthanc:8042/dicom-web/studies/1.2.3'] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller^Anna', Ideographic: 'X' }] },
    '00100020': { vr: 'LO', Value: ['mrn-1'] },
    '0020000D': { vr: 'UI', Value: ['1.2.3'] },
  };

  test('the matching columns are normalized like the query values', () => {
    expect(matchingColumns(stored)).toEqual({
      patientId: 'MRN-1',
      patientName: 'MLLER^ANNA=X',
      accessionNumber: '',
      studyDescription: 'HEAD CT',
      studyDate: '20190301',
      modalities: ['CT', 'MR'],
    });
  });

  test('absent attributes are null, empty ones empty', () => {
    const cols = matchingColumns({ '00080020': { vr: 'DA' }, '0020000D': { vr: 'UI', Value: ['1.2'] } });
    expect(cols).toEqual({
      patientId: null,
      patientName: null,
      accessionNumber: null,
      studyDescription: null,
      studyDate: '',
      modalities: [],
    });
  });

  test.each([
    [new Set(['00080020', '0020000D']), ['00080020', '0020000D']],
    [new Set(['00081190', '0020000D', '00101010']), ['00081190', '0020000D']],
  ])('keeps only the planned tags (%#)', (tags, keys) => {
    expect(Object.keys(projectAnswer(stored, tags, 'https://ehr.example/dicom-web'))).toEqual(keys);
  });

  test('RetrieveURL points at the public root', () => {
    const out = projectAnswer(stored, new Set(['00081190', '0020000D']), 'https://ehr.example/p/dicom-web');
    expect(out['00081190']).toEqual({ vr: 'UR', Value: ['https://ehr.example/p/dicom-web/studies/1.2.3'] });
  });
});
