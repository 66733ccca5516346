import { sql } from 'slonik';
import { describe, expect, test } from 'vitest';
import { parseSearch } from './parse.ts';
import { conditionSql, cursorSql, dateCondition, orderSql } from './sql.ts';

const opts = { strict: true, defaultCount: 20, maxCount: 100 };
const scope = () => sql.fragment`r.patient_id = ANY(${sql.array(['p1'], 'text')})`;

function render(type: 'Patient' | 'ImagingStudy' | 'ServiceRequest', query: Record<string, string>) {
  const [c] = parseSearch(type, query, opts).conditions;
  if (!c) throw new Error('no condition');
  return conditionSql(type, c, scope);
}

describe('search conditions → parameterized SQL (user text only ever in values)', () => {
  test.each([
    ['Patient', { family: 'Mül' }, /i\.value LIKE \$slonik_3/, ['Patient', 'family', 'mul%']],
    [
      'Patient',
      { 'family:exact': 'Mül' },
      /i\.value = \$slonik_3 AND i\.exact = \$slonik_4/,
      ['Patient', 'family', 'mul', 'Mül'],
    ],
    ['Patient', { 'name:contains': '50%_' }, /LIKE/, ['Patient', 'name', '%50\\%\\_%']],
    [
      'Patient',
      { identifier: 's|v' },
      /i\.value = \$slonik_3 AND i\.system = \$slonik_4/,
      ['Patient', 'identifier', 'v', 's'],
    ],
    ['Patient', { identifier: '|v' }, /i\.system IS NULL/, ['Patient', 'identifier', 'v']],
    ['Patient', { 'gender:not': 'male' }, /^r\.id NOT IN/, ['Patient', 'gender', 'male']],
    ['Patient', { 'gender:missing': 'true' }, /^NOT EXISTS/, ['Patient', 'gender']],
    ['Patient', { _id: 'a,b' }, /^r\.id = ANY\(\$slonik_1::"text"\[\]\)$/, [['a', 'b']]],
    [
      'ServiceRequest',
      { patient: 'Patient/p9' },
      /i\.target_id = \$slonik_3 AND i\.target_type = \$slonik_4/,
      ['ServiceRequest', 'patient', 'p9', 'Patient'],
    ],
  ] as const)('%s %j', (type, query, pattern, values) => {
    const f = render(type, query);
    expect(f.sql).toMatch(pattern);
    expect(f.values).toEqual(values);
  });

  test.each([["' OR 1=1 --"], ['\u202e'], ['%00'], ['); DROP TABLE patients; --']])(
    '%j stays a bound value',
    (evil) => {
      for (const [type, code] of [
        ['Patient', 'family'],
        ['Patient', 'identifier'],
        ['ServiceRequest', 'patient'],
        ['Patient', '_id'],
      ] as const) {
        const f = render(type, { [code]: evil });
        expect(f.sql).not.toContain(evil);
        const bound = JSON.stringify(f.values).toLowerCase();
        expect(bound).toContain(JSON.stringify(evil).slice(1, -1).replace('%', '').toLowerCase());
      }
    },
  );

  test('a NUL can never match: the condition becomes FALSE', () => {
    expect(render('Patient', { family: 'a\u0000' }).sql).toBe('FALSE');
    expect(render('Patient', { _id: '\u0000' }).sql).toBe('FALSE');
  });

  test('chained patient.identifier selects patients under the access scope', () => {
    const f = render('ImagingStudy', { 'patient.identifier': 'mrn|CLI-1' });
    expect(f.sql).toContain('FROM "patients" r WHERE NOT r.deleted AND r.patient_id = ANY(');
    expect(f.values).toEqual(expect.arrayContaining(['ImagingStudy', 'patient', 'Patient', ['p1'], 'CLI-1', 'mrn']));
  });
});

describe('date prefixes → range SQL', () => {
  const range = { low: new Date('2020-01-01T00:00:00Z'), high: new Date('2020-12-31T23:59:59.999Z') };
  test.each([
    ['eq', '(L >= $slonik_1::timestamptz AND H <= $slonik_2::timestamptz)'],
    ['gt', 'H > $slonik_1::timestamptz'],
    ['lt', 'L < $slonik_1::timestamptz'],
    ['ge', 'H >= $slonik_1::timestamptz'],
    ['le', 'L <= $slonik_1::timestamptz'],
    ['sa', 'L > $slonik_1::timestamptz'],
    ['eb', 'H < $slonik_1::timestamptz'],
  ] as const)('%s', (prefix, text) => {
    expect(dateCondition(prefix, sql.fragment`L`, sql.fragment`H`, range).sql).toBe(text);
  });
});

describe('keyset paging SQL', () => {
  test.each([
    [{ code: '_id', column: 'id', descending: false }, { v: null, id: 'x' }, 'r.id > $slonik_1', 'r.id ASC'],
    [{ code: '_id', column: 'id', descending: true }, { v: null, id: 'x' }, 'r.id < $slonik_1', 'r.id DESC'],
    [
      { code: 'birthdate', column: 'sort_date', descending: false },
      { v: '1970-01-01', id: 'x' },
      '(r."sort_date", r.id) > ($slonik_1::timestamptz, $slonik_2)',
      'r."sort_date" ASC, r.id ASC',
    ],
    [
      { code: 'family', column: 'sort_string', descending: true },
      { v: 'smith', id: 'x' },
      '(r."sort_string", r.id) < ($slonik_1::text, $slonik_2)',
      'r."sort_string" DESC, r.id DESC',
    ],
  ] as const)('%j after %j', (sort, cursor, where, order) => {
    expect(cursorSql(sort, cursor).sql).toBe(where);
    expect(orderSql(sort).sql).toBe(order);
  });
});
