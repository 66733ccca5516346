import { describe, expect, test } from 'vitest';
import { archiveFileName, archiveFormat, orthancArchiveRequest, StudyArchiveError } from './study-archive.ts';

describe('archiveFormat', () => {
  test.each([
    [{}, 'zip'],
    [{ format: 'zip' }, 'zip'],
    [{ format: 'dicomdir' }, 'dicomdir'],
  ])('%j → %s', (query, format) => {
    expect(archiveFormat(query)).toBe(format);
  });
  test.each([[{ format: 'tar' }], [{ format: ['zip', 'zip'] }], [{ other: '1' }], [{ format: 'zip', x: '' }]])(
    '%j → 400',
    (query) => {
      expect(() => archiveFormat(query)).toThrow(StudyArchiveError);
    },
  );
});

describe('orthancArchiveRequest', () => {
  const a = '11111111-22222222-33333333-44444444-55555555';
  const b = '66666666-77777777-88888888-99999999-aaaaaaaa';
  test.each([
    ['zip', [a], { path: `/studies/${a}/archive` }],
    ['dicomdir', [a], { path: `/studies/${a}/media` }],
    ['zip', [a, b], { path: '/tools/create-archive', json: { Resources: [a, b], Synchronous: true } }],
    ['dicomdir', [a, b], { path: '/tools/create-media', json: { Resources: [a, b], Synchronous: true } }],
  ] as const)('%s of %j', (format, ids, expected) => {
    expect(orthancArchiveRequest(format, ids)).toEqual(expected);
  });
});

test.each([
  ['zip', 'study-1.2.3.zip'],
  ['dicomdir', 'study-1.2.3-dicomdir.zip'],
] as const)('file name of a %s download', (format, name) => {
  expect(archiveFileName('1.2.3', format)).toBe(name);
});
