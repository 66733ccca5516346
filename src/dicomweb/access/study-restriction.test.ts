import { describe, expect, test } from 'vitest';
import type { SearchRestriction } from '../../auth/access.ts';
import { studyRestriction } from './study-restriction.ts';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const r = (code: string, value: string): SearchRestriction => ({ code, value });

/** The SQL text with whitespace collapsed, and its bound values. */
function rendered(list: SearchRestriction[]): { text: string; values: readonly unknown[] } {
  const out = studyRestriction(list);
  if (out.kind !== 'sql') throw new Error(`expected a condition, got ${out.kind}`);
  return { text: out.condition.sql.replace(/\s+/g, ' '), values: out.condition.values };
}

describe('ImagingStudy restrictions → study-index condition', () => {
  test('no restriction: nothing to add', () => {
    expect(studyRestriction([])).toEqual({ kind: 'none' });
  });

  test.each([
    ['another parameter', [r('status', 'available')]],
    ['a modifier on modality', [r('modality:not', 'CT')]],
    ['modality:missing', [r('modality:missing', 'true')]],
    ['modality mixed with another parameter', [r('modality', 'CT'), r('status', 'available')]],
    ['a chained parameter', [r('patient.name', 'x')]],
  ])('%s fails closed', (_name, list) => {
    const out = studyRestriction(list);
    expect(out.kind).toBe('deny');
  });

  test.each([
    // [restriction value, SQL (whitespace collapsed) over the token index, bound values]
    [
      'CT',
      /^\(r\.id IN \(SELECT i\.resource_id FROM "search_token" i WHERE i\.resource_type = \$slonik_1 AND i\.code = \$slonik_2 AND \(i\.value = \$slonik_3\)\)\)$/,
      ['ImagingStudy', 'modality', 'CT'],
    ],
    [`${DCM}|CT`, /\(i\.value = \$slonik_3 AND i\.system = \$slonik_4\)/, ['ImagingStudy', 'modality', 'CT', DCM]],
    ['|CT', /\(i\.value = \$slonik_3 AND i\.system IS NULL\)/, ['ImagingStudy', 'modality', 'CT']],
    [`${DCM}|`, /\(i\.system = \$slonik_3\)/, ['ImagingStudy', 'modality', DCM]],
    [
      `CT,${DCM}|MR`,
      /\(\(i\.value = \$slonik_3\) OR \(i\.value = \$slonik_4 AND i\.system = \$slonik_5\)\)/,
      ['ImagingStudy', 'modality', 'CT', 'MR', DCM],
    ],
    ["CT'; DROP TABLE x; --", /i\.value = \$slonik_3/, ['ImagingStudy', 'modality', "CT'; DROP TABLE x; --"]],
  ])('modality=%s', (value, text, values) => {
    const out = rendered([r('modality', value)]);
    expect(out.text).toMatch(text);
    expect(out.values).toEqual(values);
  });

  test('two modality restrictions are ANDed', () => {
    const out = rendered([r('modality', 'CT'), r('modality', 'MR')]);
    expect(out.text).toMatch(/^\(r\.id IN \(.*\) AND r\.id IN \(.*\)\)$/);
    expect(out.values).toEqual(['ImagingStudy', 'modality', 'CT', 'ImagingStudy', 'modality', 'MR']);
  });

  test.each([
    [[r('modality', 'CT')], [r('modality', 'CT')], true],
    [[r('modality', 'CT'), r('modality', 'MR')], [r('modality', 'MR'), r('modality', 'CT')], true],
    [[r('modality', 'CT')], [r('modality', 'MR')], false],
    [[r('modality', 'CT,MR')], [r('modality', 'CT'), r('modality', 'MR')], false],
    [[r('modality', 'CT')], [r('modality', `${DCM}|CT`)], false],
  ])('cache key: %j vs %j → same: %s', (a, b, same) => {
    const ka = studyRestriction(a);
    const kb = studyRestriction(b);
    if (ka.kind !== 'sql' || kb.kind !== 'sql') throw new Error('expected conditions');
    expect(ka.key === kb.key).toBe(same);
  });
});
