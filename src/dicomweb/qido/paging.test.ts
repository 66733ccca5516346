import { describe, expect, test } from 'vitest';
import type { StudyScope } from '../access/linked-orthanc-studies.ts';
import { pageOfMerged, planQido, qidoSortKey } from './paging.ts';

const linked = { orthancIds: new Set(['id']), patientIds: ['MRN'] };
const allowed = (...uids: string[]): StudyScope => ({ all: false, studies: new Map(uids.map((u) => [u, linked])) });

describe('planQido', () => {
  test.each([
    [
      'all: single query, caller constraint kept',
      { all: true } as StudyScope,
      undefined,
      undefined,
      10,
      { kind: 'single' },
    ],
    ['all with a path study', { all: true } as StudyScope, undefined, '1.9', 10, { kind: 'single' }],
    ['no allowed study', allowed(), undefined, undefined, 10, { kind: 'empty' }],
    [
      'allowed set sorted into one list',
      allowed('1.3', '1.1', '1.2'),
      undefined,
      undefined,
      10,
      { kind: 'single', studyUids: ['1.1', '1.2', '1.3'] },
    ],
    [
      'caller list intersected (B removed)',
      allowed('1.1', '1.2'),
      ['1.2', '2.1'],
      undefined,
      10,
      { kind: 'single', studyUids: ['1.2'] },
    ],
    ['caller list entirely forbidden', allowed('1.1'), ['2.1', '2.2'], undefined, 10, { kind: 'empty' }],
    ['path study allowed', allowed('1.1'), undefined, '1.1', 10, { kind: 'single', studyUids: ['1.1'] }],
    ['path study forbidden looks like unknown', allowed('1.1'), undefined, '2.1', 10, { kind: 'empty' }],
    ['path study allowed but caller list excludes it', allowed('1.1'), ['1.2'], '1.1', 10, { kind: 'empty' }],
    [
      'over the limit: chunks',
      allowed('1.5', '1.1', '1.4', '1.2', '1.3'),
      undefined,
      undefined,
      2,
      { kind: 'chunks', chunks: [['1.1', '1.2'], ['1.3', '1.4'], ['1.5']] },
    ],
    [
      'exactly the limit: single',
      allowed('1.1', '1.2'),
      undefined,
      undefined,
      2,
      { kind: 'single', studyUids: ['1.1', '1.2'] },
    ],
  ] as const)('%s', (_name, scope, requested, path, max, plan) => {
    expect(planQido(scope, requested as readonly string[] | undefined, path, max)).toEqual(plan);
  });
});

const study = (uid: string) => ({ '0020000D': { Value: [uid] } });

describe('pageOfMerged: paging over the allowed set', () => {
  // Three chunks as Orthanc returns them (its own order), seven allowed studies in all.
  const parts = [
    [study('1.5'), study('1.1')],
    [study('1.7'), study('1.3'), study('1.2')],
    [study('1.4'), study('1.6')],
  ];
  const uids = (items: ReturnType<typeof study>[]) => items.map((s) => String(s['0020000D'].Value[0]));

  test.each([
    [0, 3, ['1.1', '1.2', '1.3']],
    [3, 3, ['1.4', '1.5', '1.6']],
    [6, 3, ['1.7']],
    [7, 3, []],
    [100, 1, []],
    [2, undefined, ['1.3', '1.4', '1.5', '1.6', '1.7']],
  ])('offset %i limit %s', (offset, limit, expected) => {
    expect(uids(pageOfMerged(parts, qidoSortKey, offset, limit))).toEqual(expected);
  });

  test.each([1, 2, 3, 4, 7, 8])('walking with limit=%i visits every study exactly once, pages never short', (limit) => {
    const seen: string[] = [];
    for (let offset = 0; ; offset += limit) {
      const page = uids(pageOfMerged(parts, qidoSortKey, offset, limit));
      if (page.length === 0) break;
      if (offset + limit <= 7) expect(page).toHaveLength(limit);
      seen.push(...page);
    }
    expect(seen).toEqual(['1.1', '1.2', '1.3', '1.4', '1.5', '1.6', '1.7']);
  });

  test('series and instance keys order within a study', () => {
    const s = (st: string, se: string, i: string) => ({
      '0020000D': { Value: [st] },
      '0020000E': { Value: [se] },
      '00080018': { Value: [i] },
    });
    const merged = pageOfMerged(
      [
        [s('1.2', '5', '1'), s('1.1', '9', '2')],
        [s('1.1', '3', '7'), s('1.1', '3', '4')],
      ],
      qidoSortKey,
      0,
    );
    expect(merged.map(qidoSortKey)).toEqual(['1.1|3|4', '1.1|3|7', '1.1|9|2', '1.2|5|1']);
  });
});
