import { describe, expect, test } from 'vitest';
import { orthancId } from './orthanc-ids.ts';

const P = 'MRN-0000042';
const ST = '1.2.826.0.1.3680043.2.1125.1';
const SE = `${ST}.2`;
const IN = `${SE}.3`;

describe('orthancId', () => {
  // Series and instance ids as Orthanc 1.10.1 gave them for an instance stored with these identifiers; patient and
  // study ids from the same formula (SHA-1 of the `|`-joined identifiers).
  test.each([
    ['patient', { patientId: P }, '37349a74-874ae29a-2e78aa04-c0891231-e8eb2b20'],
    ['study', { patientId: P, study: ST }, '551f73d6-08dc5f54-c465c7d7-9d22c108-b474563b'],
    ['series', { patientId: P, study: ST, series: SE }, '0a505186-ebaddf5a-e8e9393c-d42989c6-75e53a74'],
    ['instance', { patientId: P, study: ST, series: SE, instance: IN }, '1478f9de-a8dfdf22-f56c2238-65c7d4e2-360b6046'],
    [
      'a series without its study names the patient',
      { patientId: P, series: SE },
      '37349a74-874ae29a-2e78aa04-c0891231-e8eb2b20',
    ],
  ])('%s', (_name, path, id) => {
    expect(orthancId(path)).toBe(id);
  });

  test.each([
    ['another PatientID', { patientId: 'MRN-0000043', study: ST }],
    ['the PatientID in lower case', { patientId: P.toLowerCase(), study: ST }],
    ['another study UID', { patientId: P, study: `${ST}9` }],
  ])('%s gives another study id', (_name, path) => {
    expect(orthancId(path)).not.toBe(orthancId({ patientId: P, study: ST }));
  });
});
