import { describe, expect, test } from 'vitest';
import { FailureReason, type InstanceOutcome, stowStatus, WarningReason } from './outcome.ts';
import { buildStowResponse } from './response.ts';

const base = 'https://ehr.example/dicom-web';
const stored = (sop: string, study = '1.2.3'): InstanceOutcome => ({
  kind: 'stored',
  part: 0,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  sopInstanceUid: sop,
  studyInstanceUid: study,
  seriesInstanceUid: `${study}.1`,
  alreadyStored: false,
});
const failedOne: InstanceOutcome = {
  kind: 'failed',
  part: 1,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  sopInstanceUid: '1.2.3.1.9',
  reason: FailureReason.DataSetMismatch,
  comment: "PatientID does not match the order's patient",
  detail: 'order ACC-1 is for another patient than MRN "X"',
};
const garbage: InstanceOutcome = {
  kind: 'failed',
  part: 2,
  file: 'notes.txt',
  reason: FailureReason.CannotUnderstand,
  comment: 'not a DICOM Part 10 instance',
  detail: 'not a DICOM Part 10 file',
};
const held: InstanceOutcome = {
  ...(stored('1.2.3.1.7') as Extract<InstanceOutcome, { kind: 'stored' }>),
  warning: { reason: WarningReason.HeldForReview, comment: 'held for linking', detail: 'queued in "reconciliation"' },
};

describe('stowStatus', () => {
  test.each<[string, InstanceOutcome[], number]>([
    ['all stored', [stored('1'), stored('2')], 200],
    ['one failed', [stored('1'), failedOne], 202],
    ['stored with warning', [held], 202],
    ['none stored', [failedOne, garbage], 409],
    ['nothing at all', [], 409],
  ])('%s → %i', (_n, outcomes, status) => expect(stowStatus(outcomes)).toBe(status));
});

describe('buildStowResponse', () => {
  test('success: study RetrieveURL and ReferencedSOPSequence pointing at our DICOMweb base', () => {
    const r = buildStowResponse([stored('1.2.3.1.1')], base);
    expect(r.status).toBe(200);
    expect(r.warnings).toEqual([]);
    expect(r.body).toEqual({
      '00081190': { vr: 'UR', Value: [`${base}/studies/1.2.3`] },
      '00081199': {
        vr: 'SQ',
        Value: [
          {
            '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
            '00081155': { vr: 'UI', Value: ['1.2.3.1.1'] },
            '00081190': { vr: 'UR', Value: [`${base}/studies/1.2.3/series/1.2.3.1/instances/1.2.3.1.1`] },
          },
        ],
      },
    });
  });

  test('partial: FailedSOPSequence with FailureReason and ErrorComment, Warning headers with details', () => {
    const r = buildStowResponse([stored('1.2.3.1.1'), failedOne, garbage], base);
    expect(r.status).toBe(202);
    const failedSeq = r.body['00081198']?.Value as Record<string, { Value?: unknown[] }>[];
    expect(
      failedSeq.map((f) => [f['00081155']?.Value?.[0], f['00081197']?.Value?.[0], f['00000902']?.Value?.[0]]),
    ).toEqual([
      ['1.2.3.1.9', 0xa900, "PatientID does not match the order's patient"],
      [undefined, 0xc000, 'not a DICOM Part 10 instance'],
    ]);
    expect(r.warnings).toEqual([
      '299 - "1.2.3.1.9: failed (0xA900): order ACC-1 is for another patient than MRN \\"X\\""',
      '299 - "notes.txt: failed (0xC000): not a DICOM Part 10 file"',
    ]);
  });

  test('none stored: 409, no ReferencedSOPSequence; the URL study is still named', () => {
    const r = buildStowResponse([failedOne], base, '1.2.3');
    expect(r.status).toBe(409);
    expect(r.body['00081199']).toBeUndefined();
    expect(r.body['00081190']?.Value).toEqual([`${base}/studies/1.2.3`]);
  });

  test('warnings: WarningReason in the referenced item', () => {
    const r = buildStowResponse([held], base);
    const item = (r.body['00081199']!.Value as Record<string, { Value?: unknown[] }>[])[0]!;
    expect(item['00081196']?.Value).toEqual([0xb100]);
    expect(r.status).toBe(202);
    expect(r.warnings[0]).toMatch(/warning \(0xB100\): queued in \\"reconciliation\\"/);
  });

  test('several studies: no study-level RetrieveURL; many failures: capped Warning headers', () => {
    const r = buildStowResponse([stored('1', '1.2.3'), stored('2', '1.2.4'), ...Array(30).fill(garbage)], base);
    expect(r.body['00081190']).toBeUndefined();
    expect(r.warnings).toHaveLength(21);
    expect(r.warnings.at(-1)).toBe('299 - "10 more, see the response body"');
  });
});
