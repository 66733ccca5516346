import { expect, test } from 'vitest';
import { type DicomDemographics, demographicContradictions, type PatientDemographics } from './demographics.ts';

const jane: PatientDemographics = {
  names: [{ family: 'Smith', given: ['Jane', 'Marie'] }],
  birthDate: '1970-01-01',
  gender: 'female',
};

test.each<[string, DicomDemographics, PatientDemographics, string[]]>([
  ['all agree', { patientName: 'Smith^Jane', patientBirthDate: '19700101', patientSex: 'F' }, jane, []],
  ['letter case and trailing empty components', { patientName: 'SMITH^JANE^^^' }, jane, []],
  ['given names in full', { patientName: 'smith^jane marie' }, jane, []],
  ['family name only', { patientName: 'Smith' }, jane, []],
  ['nothing in DICOM', {}, jane, []],
  ['nothing in the EHR', { patientName: 'Doe^John', patientBirthDate: '19010101', patientSex: 'M' }, {}, []],
  ['EHR gender unknown', { patientSex: 'M' }, { gender: 'unknown' }, []],
  ['EHR birth year only', { patientBirthDate: '19700315' }, { birthDate: '1970' }, []],
  ['another name', { patientName: 'Doe^John' }, jane, ['PatientName']],
  ['another given name', { patientName: 'Smith^John' }, jane, ['PatientName']],
  ['another birth date', { patientBirthDate: '19010101' }, jane, ['PatientBirthDate']],
  ['another birth year', { patientBirthDate: '19710315' }, { birthDate: '1970' }, ['PatientBirthDate']],
  ['another sex', { patientSex: 'M' }, jane, ['PatientSex']],
  ['sex O against female', { patientSex: 'O' }, jane, ['PatientSex']],
  [
    'all three differ',
    { patientName: 'Doe^John', patientBirthDate: '19010101', patientSex: 'M' },
    jane,
    ['PatientName', 'PatientBirthDate', 'PatientSex'],
  ],
  [
    'any of several EHR names fits',
    { patientName: 'Jones^Jane' },
    { names: [{ family: 'Smith' }, { family: 'Jones' }] },
    [],
  ],
])('%s', (_name, dicom, ehr, want) => {
  const got = demographicContradictions(dicom, ehr);
  expect(got.map((c) => c.split(' ')[0])).toEqual(want);
  for (const c of got) expect(c).toMatch(/differs from the EHR/);
});
