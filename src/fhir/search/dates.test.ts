import { describe, expect, test } from 'vitest';
import { BadRequestError } from '../errors.ts';
import { type DatePrefix, dateRange, matchesDate, searchDateRange } from './dates.ts';

const r = (low: string, high: string) => ({ low: new Date(low), high: new Date(high) });

describe('dateRange: a value covers its whole precision', () => {
  test.each([
    ['2020', '2020-01-01T00:00:00.000Z', '2020-12-31T23:59:59.999Z'],
    ['2020-02', '2020-02-01T00:00:00.000Z', '2020-02-29T23:59:59.999Z'],
    ['2021-02', '2021-02-01T00:00:00.000Z', '2021-02-28T23:59:59.999Z'],
    ['2020-12-31', '2020-12-31T00:00:00.000Z', '2020-12-31T23:59:59.999Z'],
    ['2020-03-04T10:20', '2020-03-04T10:20:00.000Z', '2020-03-04T10:20:59.999Z'],
    ['2020-03-04T10:20:30Z', '2020-03-04T10:20:30.000Z', '2020-03-04T10:20:30.999Z'],
    ['2020-03-04T10:20:30+02:00', '2020-03-04T08:20:30.000Z', '2020-03-04T08:20:30.999Z'],
    ['2020-03-04T10:20:30.250-05:00', '2020-03-04T15:20:30.250Z', '2020-03-04T15:20:30.250Z'],
  ])('%s → [%s, %s]', (value, low, high) => {
    expect(dateRange(value)).toEqual(r(low, high));
  });

  test.each([
    '',
    'xx',
    '2020-13',
    '2020-02-30',
    '2021-02-29',
    '2020-01-01T25:00',
    '2020-1-1',
    "2020' OR 1=1 --",
    '2020\u0000',
  ])('%j is not a date', (value) => {
    expect(dateRange(value)).toBeUndefined();
    expect(() => searchDateRange('birthdate', value)).toThrow(BadRequestError);
  });
});

describe('matchesDate: prefix semantics (https://hl7.org/fhir/R4/search.html#prefix)', () => {
  const day = r('2020-06-15T00:00:00.000Z', '2020-06-15T23:59:59.999Z');
  const search = (v: string) => dateRange(v) as NonNullable<ReturnType<typeof dateRange>>;
  test.each<[DatePrefix, string, boolean]>([
    ['eq', '2020-06-15', true],
    ['eq', '2020-06', true],
    ['eq', '2020-06-16', false],
    ['ne', '2020-06-16', true],
    ['ne', '2020-06-15', false],
    ['gt', '2020-06-14', true],
    ['gt', '2020-06-15', false],
    ['lt', '2020-06-16', true],
    ['lt', '2020-06-15', false],
    ['ge', '2020-06-15', true],
    ['ge', '2020-06-16', false],
    ['le', '2020-06-15', true],
    ['le', '2020-06-14', false],
    ['sa', '2020-06-14', true],
    ['sa', '2020-06', false],
    ['eb', '2020-06-16', true],
    ['eb', '2020-06', false],
    ['ap', '2020', true],
    ['ap', '2021', false],
  ])('%s%s on 2020-06-15 → %s', (prefix, value, expected) => {
    expect(matchesDate(prefix, day, search(value))).toBe(expected);
  });
});
