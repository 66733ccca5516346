import { describe, expect, test } from 'vitest';
import { formatIdentifier, studyUidFromIdentifier } from './identifiers.ts';

describe('identifier allocation format', () => {
  const when = new Date('2026-03-01T12:00:00Z');
  test.each([
    ['CLI-{year}-{seq:5}', 1, 'CLI-2026-00001'],
    ['ACC-{year}-{seq:5}', 42, 'ACC-2026-00042'],
    ['ACC-{year}-{seq:5}', 123456, 'ACC-2026-123456'],
    ['MRN{seq}', 7, 'MRN7'],
    ['{seq:8}', 99, '00000099'],
    ['X-{year}{year}-{seq:2}', 3, 'X-20262026-03'],
  ])('%s with %i → %s', (format, seq, out) => {
    expect(formatIdentifier(format, seq, when)).toBe(out);
  });

  test('uses the UTC year', () => {
    expect(formatIdentifier('{year}', 1, new Date('2026-12-31T23:30:00-05:00'))).toBe('2027');
  });

  test.each([
    ['urn:oid:1.2.840.1', '1.2.840.1'],
    ['1.2.3', '1.2.3'],
  ])('study UID of %s is %s', (value, uid) => {
    expect(studyUidFromIdentifier(value)).toBe(uid);
  });
});
