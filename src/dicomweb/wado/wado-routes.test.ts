import { describe, expect, test } from 'vitest';
import { BadDicomWebRequestError } from '../errors.ts';
import { acceptsDicomJson, searchPath } from '../qido/routes.ts';
import { resourcePath, wadoQuery, wadoQueryRules } from './wado-rs-routes.ts';
import { parseWadoUri } from './wado-uri-routes.ts';

describe('resourcePath', () => {
  test.each([
    [{ study: '1.2' }, '/studies/1.2'],
    [{ study: '1.2', series: '1.3' }, '/studies/1.2/series/1.3'],
    [{ study: '1.2', series: '1.3', instance: '1.4' }, '/studies/1.2/series/1.3/instances/1.4'],
    [
      { study: '1.2', series: '1.3', instance: '1.4', frames: '1,2,10' },
      '/studies/1.2/series/1.3/instances/1.4/frames/1,2,10',
    ],
  ])('%o', (params, path) => {
    expect(resourcePath(params)).toBe(path);
  });
  test.each([
    [{ study: '../system' }, /study: .* is not a valid UID/],
    [{ study: '1.2', series: '1.x' }, /series/],
    [{ study: '1.2', series: '1.3', instance: '1.4', frames: '0' }, /frames/],
    [{ study: '1.2', series: '1.3', instance: '1.4', frames: '1,,2' }, /frames/],
    [{ study: '1.2', series: '1.3', instance: '1.4', frames: 'abc' }, /frames/],
  ])('rejects %o', (params, reason) => {
    expect(() => resourcePath(params)).toThrow(reason);
  });
});

describe('wadoQuery: rendered and thumbnail', () => {
  const rules = wadoQueryRules(4096);
  test.each([
    ['/x', 'rendered', 4096, ''],
    ['/x', 'thumbnail', 4096, '?viewport=128,128'],
    ['/x', 'thumbnail', 64, '?viewport=64,64'],
    ['/x?viewport=64,64', 'thumbnail', 4096, '?viewport=64,64'],
    ['/x?quality=80&window=40,400,linear', 'rendered', 4096, '?quality=80&window=40,400,linear'],
    ['/x?annotation=patient&charset=utf-8', 'rendered', 4096, ''],
  ] as const)('%s %s (max %i)', (url, route, max, qs) => {
    expect(wadoQuery(url, route, max === 4096 ? rules : wadoQueryRules(max), max).query).toBe(qs);
  });
  test('the accept query parameter is the Accept header for Orthanc, never its query', () => {
    expect(wadoQuery('/x?accept=image/png', 'rendered', rules, 4096)).toEqual({ query: '', accept: 'image/png' });
  });
  test.each([['/x?foo=1'], ['/x?viewport=%3Cscript%3E'], ['/x?viewport=100000,100000']])('rejects %s', (url) => {
    expect(() => wadoQuery(url, 'rendered', rules, 4096)).toThrow(BadDicomWebRequestError);
  });
});

describe('parseWadoUri', () => {
  const ok = 'requestType=WADO&studyUID=1.2&seriesUID=1.3&objectUID=1.4';
  test.each([
    [ok, { studyUid: '1.2', seriesUid: '1.3', objectUid: '1.4', query: ok }],
    [
      `${ok}&contentType=application%2Fdicom`,
      { studyUid: '1.2', seriesUid: '1.3', objectUid: '1.4', query: `${ok}&contentType=application/dicom` },
    ],
  ])('%s', (qs, expected) => {
    expect(parseWadoUri(qs)).toEqual(expected);
  });
  test.each([
    ['studyUID=1.2&seriesUID=1.3&objectUID=1.4', /requestType is required/],
    ['requestType=WADO&seriesUID=1.3&objectUID=1.4', /studyUID is required/],
    ['requestType=WADO&studyUID=1.2&seriesUID=1.3', /objectUID is required/],
    ['requestType=OTHER&studyUID=1.2&seriesUID=1.3&objectUID=1.4', /requestType must be one of WADO/],
    [`${ok}&studyUID=1.5`, /more than once/],
    [`${ok}&bogus=1`, /Unsupported query parameter "bogus" for WADO-URI/],
    ['requestType=WADO&studyUID=x&seriesUID=1.3&objectUID=1.4', /studyUID: "x" is not a valid UID/],
  ])('rejects %s', (qs, reason) => {
    expect(() => parseWadoUri(qs)).toThrow(reason);
  });
});

describe('QIDO helpers', () => {
  test.each([
    [undefined, true],
    ['application/dicom+json', true],
    ['application/json', true],
    ['*/*', true],
    ['application/dicom+xml, application/*;q=0.1', true],
    ['application/dicom+xml', false],
    ['multipart/related; type="application/dicom+xml"', false],
  ])('accepts JSON for %s: %s', (accept, ok) => {
    expect(acceptsDicomJson(accept)).toBe(ok);
  });
  test.each([
    ['study', {}, '/studies'],
    ['series', {}, '/series'],
    ['instance', {}, '/instances'],
    ['series', { study: '1.2' }, '/studies/1.2/series'],
    ['instance', { study: '1.2' }, '/studies/1.2/instances'],
    ['instance', { study: '1.2', series: '1.3' }, '/studies/1.2/series/1.3/instances'],
  ] as const)('%s %o', (level, params, path) => {
    expect(searchPath(level, params)).toBe(path);
  });
});
