import { describe, expect, test } from 'vitest';
import { ChangeFeedOrderError, classifyChange, decideStudy, planPage, type StudyState } from './classify.ts';
import { updatedBefore } from './sweep.ts';

const change = (Seq: number, ChangeType: string, ResourceType = 'Study', ID = `id-${Seq}`) => ({
  Seq,
  ChangeType,
  ResourceType,
  ID,
});

describe('classifyChange', () => {
  test.each([
    [change(7, 'StableStudy'), { kind: 'index-study', seq: 7, orthancStudyId: 'id-7' }],
    [change(8, 'Deleted'), { kind: 'study-deleted', seq: 8, orthancStudyId: 'id-8' }],
    [change(9, 'NewStudy'), { kind: 'skip', seq: 9 }],
    [change(10, 'StableSeries', 'Series'), { kind: 'skip', seq: 10 }],
    [change(11, 'NewInstance', 'Instance'), { kind: 'skip', seq: 11 }],
    [change(12, 'StablePatient', 'Patient'), { kind: 'skip', seq: 12 }],
    [change(13, 'Deleted', 'Instance'), { kind: 'skip', seq: 13 }],
    [change(14, 'ModifiedStudy'), { kind: 'skip', seq: 14 }],
  ])('%o → %o', (c, expected) => {
    expect(classifyChange(c)).toEqual(expected);
  });
});

describe('planPage (cursor logic)', () => {
  test.each([
    ['empty page, caught up', 5, { Changes: [], Last: 5 }, { actions: [], last: 5, reset: false }],
    [
      'empty page, Orthanc ahead (should not happen)',
      5,
      { Changes: [], Last: 9 },
      { actions: [], last: 5, reset: false },
    ],
    [
      'empty page below the cursor: Orthanc log recreated',
      50,
      { Changes: [], Last: 3 },
      { actions: [], last: 50, reset: true },
    ],
    [
      'skips collapse, actions keep order',
      0,
      {
        Changes: [
          change(1, 'NewInstance', 'Instance'),
          change(2, 'NewStudy'),
          change(3, 'StableStudy'),
          change(4, 'StablePatient', 'Patient'),
          change(5, 'NewSeries', 'Series'),
        ],
        Last: 5,
      },
      {
        actions: [
          { kind: 'skip', seq: 2 },
          { kind: 'index-study', seq: 3, orthancStudyId: 'id-3' },
          { kind: 'skip', seq: 5 },
        ],
        last: 5,
        reset: false,
      },
    ],
    [
      'two stable studies in a row stay separate',
      10,
      { Changes: [change(11, 'StableStudy'), change(12, 'StableStudy')], Last: 12 },
      {
        actions: [
          { kind: 'index-study', seq: 11, orthancStudyId: 'id-11' },
          { kind: 'index-study', seq: 12, orthancStudyId: 'id-12' },
        ],
        last: 12,
        reset: false,
      },
    ],
  ])('%s', (_name, cursor, page, expected) => {
    expect(planPage(cursor, page)).toEqual(expected);
  });

  test.each([
    ['a change at the cursor (seen twice)', 5, [change(5, 'StableStudy')]],
    ['a change before the cursor', 5, [change(3, 'StableStudy')]],
    ['out of order', 0, [change(2, 'NewStudy'), change(1, 'StableStudy')]],
    ['non-integer seq', 0, [change(1.5, 'StableStudy')]],
  ])('refuses %s', (_name, cursor, changes) => {
    expect(() => planPage(cursor, { Changes: changes, Last: 9 })).toThrow(ChangeFeedOrderError);
  });
});

describe('decideStudy', () => {
  const base: StudyState = {
    exists: true,
    relinkInProgress: false,
    openItem: undefined,
    indexedInstances: undefined,
    orthancInstances: 3,
  };
  test.each([
    ['new study', {}, 'link'],
    ['deleted before we got to it', { exists: false }, 'gone'],
    ['deleted, even if it was queued', { exists: false, openItem: 'pending' }, 'gone'],
    ['being re-linked', { relinkInProgress: true }, 'transit'],
    ['already queued', { openItem: 'pending' }, 'held'],
    ['rejected stays rejected', { openItem: 'rejected', indexedInstances: 1 }, 'held'],
    ['seen twice with no new instance', { indexedInstances: 3 }, 'up-to-date'],
    ['uploaded by STOW with all its instances', { indexedInstances: 4 }, 'up-to-date'],
    ['more instances arrived later by C-STORE', { indexedInstances: 2 }, 'link'],
    ['an empty ImagingStudy', { indexedInstances: 0 }, 'link'],
  ] as const)('%s → %s', (_name, patch, expected) => {
    expect(decideStudy({ ...base, ...patch })).toBe(expected);
  });
});

describe('updatedBefore (orphan sweep)', () => {
  test.each([
    ['20261207T040000', '2026-12-07T04:00:01Z', true],
    ['20261207T040000', '2026-12-07T04:00:00Z', false],
    ['20261207T040000', undefined, false],
    [undefined, '2026-12-07T04:00:00Z', false],
    ['garbage', '2026-12-07T04:00:00Z', false],
  ] as const)('%s before %s: %s', (lastUpdate, notBefore, expected) => {
    expect(updatedBefore(lastUpdate, notBefore ? new Date(notBefore) : undefined)).toBe(expected);
  });
});
