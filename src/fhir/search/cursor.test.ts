import { describe, expect, test } from 'vitest';
import { BadRequestError } from '../errors.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';
import { isTimestampText } from './parse.ts';

describe('keyset paging cursor', () => {
  test.each([
    [{ v: null, id: 'abc' }],
    [{ v: '2020-01-01 00:00:00+00', id: 'x-1' }],
    [{ v: "o'brien \u202e", id: 'weird.id' }],
    [{ v: '-infinity', id: '1' }],
  ])('round-trips %j', (cursor) => {
    const encoded = encodeCursor(cursor);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(encoded)).toEqual(cursor);
  });

  test.each([
    ['not base64!'],
    [''],
    [Buffer.from('{"v":1}').toString('base64url')],
    [Buffer.from('[1,"x"]').toString('base64url')],
    [Buffer.from('[null]').toString('base64url')],
    ["' OR 1=1 --"],
  ])('rejects %j with a 400', (raw) => {
    expect(() => decodeCursor(raw)).toThrow(BadRequestError);
  });
});

describe('cursor sort values', () => {
  test.each([
    ['2026-11-28 06:30:38.449+00', true],
    ['2026-11-28 06:30:38+05:30', true],
    ['-infinity', true],
    ['garbage', false],
    ["2020-01-01' OR 1=1 --", false],
    ['2020-13-45 00:00:00+00', false],
  ])('isTimestampText(%j) = %s', (v, ok) => {
    expect(isTimestampText(v)).toBe(ok);
  });
});
