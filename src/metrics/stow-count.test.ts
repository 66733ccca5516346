import { describe, expect, test } from 'vitest';
import { stowCounts, uploadCounts } from './stow-count.ts';

const ref = (warning?: number) => ({
  '00081155': { vr: 'UI', Value: ['1.2.3'] },
  ...(warning === undefined ? {} : { '00081196': { vr: 'US', Value: [warning] } }),
});
const failed = (reason: number) => ({ '00081197': { vr: 'US', Value: [reason] } });

describe('stowCounts', () => {
  test.each([
    { name: 'not JSON', body: 'oops', want: [] },
    { name: 'not an object', body: '[1]', want: [] },
    { name: 'empty response', body: '{}', want: [] },
    {
      name: 'two stored, one held',
      body: JSON.stringify({ '00081199': { vr: 'SQ', Value: [ref(), ref(), ref(0xb007)] } }),
      want: [
        { outcome: 'stored', reason: '', count: 2 },
        { outcome: 'warning', reason: 'B007', count: 1 },
      ],
    },
    {
      name: 'failures by reason',
      body: JSON.stringify({ '00081198': { vr: 'SQ', Value: [failed(0xa900), failed(0x0124), failed(0xa900)] } }),
      want: [
        { outcome: 'failed', reason: 'A900', count: 2 },
        { outcome: 'failed', reason: '0124', count: 1 },
      ],
    },
  ])('$name', ({ body, want }) => {
    expect(stowCounts(body)).toEqual(want);
  });
});

describe('uploadCounts', () => {
  test.each([
    { name: 'not JSON', body: '<html>', want: [] },
    { name: 'nothing', body: JSON.stringify({ accepted: 0, rejected: [] }), want: [] },
    {
      name: 'stored and rejected by reason',
      body: JSON.stringify({
        accepted: 3,
        rejected: [
          { file: 'a.dcm', reason: 'no such patient (0xa900)' },
          { file: 'b.txt', reason: 'not DICOM (0xC000)' },
          { file: 'c.dcm', reason: 'odd' },
        ],
      }),
      want: [
        { outcome: 'stored', reason: '', count: 3 },
        { outcome: 'failed', reason: 'A900', count: 1 },
        { outcome: 'failed', reason: 'C000', count: 1 },
        { outcome: 'failed', reason: '', count: 1 },
      ],
    },
  ])('$name', ({ body, want }) => {
    expect(uploadCounts(body)).toEqual(want);
  });
});
