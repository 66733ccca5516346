import { describe, expect, test } from 'vitest';
import { outcomesOf, reasonInWords } from './stow.ts';

const ref = (uid: string, warning?: number) => ({
  '00081155': { vr: 'UI', Value: [uid] },
  ...(warning === undefined ? {} : { '00081196': { vr: 'US', Value: [warning] } }),
});
const failed = (uid: string, code: number, comment?: string) => ({
  '00081155': { vr: 'UI', Value: [uid] },
  '00081197': { vr: 'US', Value: [code] },
  ...(comment ? { '00000902': { vr: 'LO', Value: [comment] } } : {}),
});

describe('outcomesOf (PS3.18 §10.5.3 STOW-RS response)', () => {
  test.each([
    ['stored', { '00081199': { vr: 'SQ', Value: [ref('1.1')] } }, [{ kind: 'stored', sopInstanceUid: '1.1' }]],
    [
      'held (warning 0xB100)',
      { '00081199': { vr: 'SQ', Value: [ref('1.2', 0xb100)] } },
      [
        {
          kind: 'held',
          sopInstanceUid: '1.2',
          reason: 'Held for reconciliation: stored, not linked to a patient and order yet',
        },
      ],
    ],
    [
      'held, with the reason in an ErrorComment',
      {
        '00081199': {
          vr: 'SQ',
          Value: [{ ...ref('1.5', 0xb100), '00000902': { vr: 'LO', Value: ['stored, not linked: held for review'] } }],
        },
      },
      [
        {
          kind: 'held',
          sopInstanceUid: '1.5',
          reason:
            'Held for reconciliation: stored, not linked to a patient and order yet (stored, not linked: held for review)',
        },
      ],
    ],
    [
      'refused with a comment',
      { '00081198': { vr: 'SQ', Value: [failed('1.3', 0xa900, 'no order with accession X')] } },
      [
        {
          kind: 'refused',
          sopInstanceUid: '1.3',
          code: 0xa900,
          reason:
            'Error: data set does not match (required attributes, or no matching patient and order): no order with accession X',
        },
      ],
    ],
    [
      'an array-wrapped answer',
      [{ '00081199': { vr: 'SQ', Value: [ref('1.4')] } }],
      [{ kind: 'stored', sopInstanceUid: '1.4' }],
    ],
    ['nothing', undefined, []],
    ['an error body', { error: 'x' }, []],
  ])('%s', (_name, body, expected) => {
    expect(outcomesOf(body)).toEqual(expected);
  });
});

describe('reasonInWords (PS3.4 Annex B.2.3)', () => {
  test.each([
    [0xa700, /out of resources/],
    [0xa900, /does not match/],
    [0xc000, /cannot understand/],
    [0x0124, /not authorized/],
    [0x0110, /Processing failure/],
    [0xb100, /Held for reconciliation/],
    [0xb007, /does not match SOP class/],
    [0xfe00, /^Status 0xFE00$/],
  ])('0x%s', (code, words) => {
    expect(reasonInWords(code)).toMatch(words);
  });
});
