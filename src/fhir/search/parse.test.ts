import { describe, expect, test } from 'vitest';
import { BadRequestError } from '../errors.ts';
import { parseSearch } from './parse.ts';

const opts = { strict: false, defaultCount: 20, maxCount: 100 };

describe('parseSearch: parameters → conditions', () => {
  test.each([
    ['Patient', { family: 'Smith' }, { kind: 'string', code: 'family', match: 'prefix', values: ['Smith'] }],
    ['Patient', { 'name:exact': 'Ann' }, { kind: 'string', code: 'name', match: 'exact', values: ['Ann'] }],
    [
      'Patient',
      { 'name:contains': 'nn,xy' },
      { kind: 'string', code: 'name', match: 'contains', values: ['nn', 'xy'] },
    ],
    [
      'Patient',
      { identifier: 'sys|1' },
      { kind: 'token', code: 'identifier', not: false, values: [{ system: 'sys', code: '1' }] },
    ],
    [
      'Patient',
      { 'gender:not': 'male' },
      { kind: 'token', code: 'gender', not: true, values: [{ system: undefined, code: 'male' }] },
    ],
    [
      'Patient',
      { 'birthdate:missing': 'true' },
      { kind: 'missing', code: 'birthdate', paramType: 'date', missing: true },
    ],
    ['Patient', { _id: 'a,b' }, { kind: 'id', values: ['a', 'b'] }],
    [
      'ServiceRequest',
      { patient: 'Patient/p1' },
      { kind: 'reference', code: 'patient', values: [{ type: 'Patient', id: 'p1' }] },
    ],
    [
      'ServiceRequest',
      { 'subject:Patient': 'p1' },
      { kind: 'reference', code: 'subject', values: [{ type: 'Patient', id: 'p1' }] },
    ],
    [
      'ImagingStudy',
      { basedon: 'sr1' },
      { kind: 'reference', code: 'basedon', values: [{ type: undefined, id: 'sr1' }] },
    ],
    [
      'ImagingStudy',
      { 'patient.identifier': 'mrn|CLI-1' },
      {
        kind: 'chain',
        code: 'patient',
        targetType: 'Patient',
        child: { kind: 'token', code: 'identifier', not: false, values: [{ system: 'mrn', code: 'CLI-1' }] },
      },
    ],
  ])('%s %j', (type, query, condition) => {
    expect(parseSearch(type as 'Patient', query, opts).conditions).toEqual([condition]);
  });

  test.each([
    ['birthdate', 'ge2020', 'ge', '2020-01-01T00:00:00.000Z'],
    ['birthdate', '2020-05', 'eq', '2020-05-01T00:00:00.000Z'],
    ['birthdate', 'sa2020-05-01', 'sa', '2020-05-01T00:00:00.000Z'],
    ['_lastUpdated', 'lt2021-01-01T10:00:00Z', 'lt', '2021-01-01T10:00:00.000Z'],
  ])('date %s=%s has prefix %s from %s', (code, value, prefix, low) => {
    const [c] = parseSearch('Patient', { [code]: value }, opts).conditions;
    expect(c).toMatchObject({ prefix });
    expect((c as { range: { low: Date } }).range.low.toISOString()).toBe(low);
  });
});

describe('parseSearch: result parameters', () => {
  test('count is capped, sort and includes are checked against the registry', () => {
    const plan = parseSearch(
      'ServiceRequest',
      { _count: '5000', _sort: '-authored', _include: 'ServiceRequest:patient', _revinclude: 'ImagingStudy:basedon' },
      opts,
    );
    expect(plan.count).toBe(100);
    expect(plan.sort).toEqual({ code: 'authored', column: 'sort_date', descending: true });
    expect(plan.include).toEqual([{ sourceType: 'ServiceRequest', param: 'patient', iterate: false }]);
    expect(plan.revInclude).toEqual([{ sourceType: 'ImagingStudy', param: 'basedon' }]);
  });

  test.each([
    [
      { _include: '*' },
      ['basedon', 'patient', 'subject', 'endpoint'].map((param) => ({
        sourceType: 'ImagingStudy',
        param,
        iterate: false,
      })),
    ],
    [
      { _include: 'ImagingStudy:basedon', '_include:iterate': 'ServiceRequest:requester' },
      [
        { sourceType: 'ImagingStudy', param: 'basedon', iterate: false },
        { sourceType: 'ServiceRequest', param: 'requester', iterate: true },
      ],
    ],
    [
      { '_include:recurse': 'ServiceRequest:patient:Patient' },
      [{ sourceType: 'ServiceRequest', param: 'patient', iterate: true, targetType: 'Patient' }],
    ],
  ])('includes %j (https://hl7.org/fhir/R4/search.html#include)', (query, expected) => {
    const plan = parseSearch('ImagingStudy', query, { ...opts, strict: true });
    expect(plan.include).toEqual(expected);
  });

  test.each([
    [{ _include: 'ServiceRequest:patient' }],
    [{ '_include:iterate': 'Foo:bar' }],
    [{ '_include:other': 'ImagingStudy:patient' }],
  ])('include %j is a 400 when strict', (query) => {
    expect(() => parseSearch('ImagingStudy', query, { ...opts, strict: true })).toThrow(BadRequestError);
  });

  test.each([
    [{ _summary: 'count' }, { count: 0, total: true, summary: 'count' }],
    [{ _total: 'accurate' }, { total: true }],
    [{}, { count: 20, total: false, sort: { code: '_id', column: 'id', descending: false } }],
    [{ _sort: 'family' }, { sort: { code: 'family', column: 'sort_string', descending: false } }],
    [{ _sort: '-_lastUpdated' }, { sort: { code: '_lastUpdated', column: 'last_updated', descending: true } }],
    [{ _elements: 'name,gender' }, { elements: ['name', 'gender'] }],
  ])('%j', (query, expected) => {
    expect(parseSearch('Patient', query, opts)).toMatchObject(expected);
  });
});

describe('parseSearch: lenient vs strict (https://hl7.org/fhir/R4/search.html#errors)', () => {
  test.each([
    [{ foo: 'bar' }],
    [{ _foo: '1' }],
    [{ _sort: 'gender' }],
    [{ _include: 'Patient:organization' }],
    [{ _revinclude: 'Observation:subject' }],
    [{ 'organization.name': 'x' }],
  ])('%j is ignored when lenient, 400 when strict', (query) => {
    expect(parseSearch('Patient', query, opts).conditions).toEqual([]);
    expect(() => parseSearch('Patient', query, { ...opts, strict: true })).toThrow(BadRequestError);
  });

  test.each([
    [{ 'name:foo': 'x' }],
    [{ 'gender:exact': 'x' }],
    [{ birthdate: 'not-a-date' }],
    [{ birthdate: '2020-02-30' }],
    [{ 'active:missing': 'maybe' }],
    [{ _count: 'abc' }],
    [{ _count: '-1' }],
    [{ _summary: 'bogus' }],
    [{ _cursor: 'garbage!' }],
  ])('%j is a 400 even when lenient', (query) => {
    expect(() => parseSearch('Patient', query, opts)).toThrow(BadRequestError);
  });
});
