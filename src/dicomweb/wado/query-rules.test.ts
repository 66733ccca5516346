import { describe, expect, test } from 'vitest';
import { BadDicomWebRequestError } from '../errors.ts';
import { orthancQueryString, parseQidoQuery } from '../qido-query.ts';
import { accept, charset, checkQuery, forwardedNames, type QueryRules, viewport, windowing } from './query-rules.ts';
import { wadoQuery, wadoQueryRules } from './wado-rs-routes.ts';
import { parseWadoUri, WADO_URI_RULES } from './wado-uri-routes.ts';

const rules = wadoQueryRules(4096);

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BadDicomWebRequestError);
    return (err as Error).message;
  }
  throw new Error('expected a 400');
}

describe('what may reach Orthanc, per route: exactly these query parameter names', () => {
  test.each([
    ['retrieve (study, series, instance)', rules.retrieve, [], ['accept', 'charset']],
    ['metadata', rules.metadata, [], ['accept', 'charset']],
    ['frames', rules.frames, [], ['accept']],
    ['bulkdata', rules.bulkdata, [], ['accept']],
    [
      'rendered',
      rules.rendered,
      ['quality', 'viewport', 'window'],
      ['accept', 'annotation', 'charset', 'quality', 'viewport', 'window'],
    ],
    ['thumbnail', rules.thumbnail, ['viewport'], ['accept', 'charset', 'viewport']],
    [
      'WADO-URI',
      WADO_URI_RULES,
      ['contentType', 'objectUID', 'requestType', 'seriesUID', 'studyUID'],
      Object.keys(WADO_URI_RULES).sort(),
    ],
  ] as Array<[string, QueryRules, string[], string[]]>)('%s', (_route, r, toOrthanc, accepted) => {
    expect(forwardedNames(r)).toEqual(toOrthanc);
    expect(Object.keys(r).sort()).toEqual(accepted);
  });

  test('QIDO-RS: matching keys as hex tags, includefield, fuzzymatching, limit, offset; nothing else', () => {
    const q = parseQidoQuery(
      'PatientName=A*&00091001=x&includefield=00091001,StudyDescription&fuzzymatching=true&limit=5&offset=1',
      'study',
    );
    const names = [...new URLSearchParams(orthancQueryString(q)).keys()];
    expect(new Set(names)).toEqual(
      new Set(['00100010', '00091001', 'includefield', 'fuzzymatching', 'limit', 'offset']),
    );
  });
});

describe('WADO-RS: the Orthanc query string of accepted requests', () => {
  test.each([
    ['retrieve', '', ''],
    ['retrieve', '?charset=utf-8&accept=multipart/related%3B%20type%3D%22application/dicom%22', ''],
    ['metadata', '?accept=application/dicom%2Bjson', ''],
    ['frames', '?accept=multipart/related;type="application/octet-stream";transfer-syntax=*', ''],
    ['rendered', '?viewport=512,512', '?viewport=512,512'],
    ['rendered', '?viewport=4096,1', '?viewport=4096,1'],
    ['rendered', '?viewport=256,256,10,20,-100,100', '?viewport=256,256,10,20,-100,100'],
    ['rendered', '?viewport=256,256,,,,', '?viewport=256,256,,,,'],
    ['rendered', '?quality=1&quality', 'x'],
    ['rendered', '?quality=100', '?quality=100'],
    ['rendered', '?window=-40.5,400,linear-exact', '?window=-40.5,400,linear-exact'],
    ['rendered', '?window=40,0.5,sigmoid', '?window=40,0.5,sigmoid'],
    ['rendered', '?annotation=patient,technique', ''],
    ['thumbnail', '', '?viewport=128,128'],
    ['thumbnail', '?viewport=200,100', '?viewport=200,100'],
  ] as const)('%s%s', (route, qs, expected) => {
    if (expected === 'x') {
      expect(() => wadoQuery(`/p${qs}`, route, rules, 4096)).toThrow(/more than once/);
      return;
    }
    expect(wadoQuery(`/p${qs}`, route, rules, 4096).query).toBe(expected);
  });

  test('`accept` reaches Orthanc as the Accept header (a form-decoded + restored)', () => {
    expect(wadoQuery('/p?accept=application/dicom+json', 'metadata', rules, 4096)).toEqual({
      query: '',
      accept: 'application/dicom+json',
    });
  });
});

describe('WADO-RS: 400 with the reason', () => {
  test.each([
    ['rendered', '?viewport=100000,100000', /viewport width must be an integer from 1 to 4096/],
    ['rendered', '?viewport=4097,10', /viewport width/],
    ['rendered', '?viewport=0,10', /viewport width/],
    ['rendered', '?viewport=10,0', /viewport height/],
    ['rendered', '?viewport=10', /vw,vh or vw,vh,sx,sy,sw,sh/],
    ['rendered', '?viewport=10,10,1,1,1', /vw,vh or/],
    ['rendered', '?viewport=10.5,10', /viewport width/],
    ['rendered', '?viewport=-10,10', /viewport width/],
    ['rendered', '?viewport=10,10,-1,0,5,5', /viewport sx/],
    ['rendered', '?viewport=10,10,0,0,0,5', /sw must not be 0/],
    ['rendered', '?viewport=10,10,0,0,99999,5', /viewport sw/],
    ['rendered', '?viewport=', /viewport/],
    ['rendered', '?quality=0', /quality must be an integer from 1 to 100/],
    ['rendered', '?quality=101', /quality/],
    ['rendered', '?quality=abc', /quality/],
    ['rendered', '?window=abc', /window must be center,width,function/],
    ['rendered', '?window=40,400', /window must be/],
    ['rendered', '?window=a,400,linear', /window center/],
    ['rendered', '?window=40,1e99999,linear', /window width/],
    ['rendered', '?window=40,400,cubic', /window function must be one of linear, linear-exact, sigmoid/],
    ['rendered', '?window=40,0.5,linear', /width must be >= 1 for linear/],
    ['rendered', '?window=40,0,sigmoid', /width must be > 0 for sigmoid/],
    ['rendered', '?annotation=everything', /annotation must be a list of patient, technique/],
    ['rendered', '?annotation=patient,patient', /annotation/],
    ['rendered', '?iccprofile=srgb', /Unsupported query parameter "iccprofile" for rendered/],
    ['rendered', '?viewport=10,10&viewport=20,20', /viewport is given more than once/],
    ['rendered', '?accept=image/gif', /accept must be one of image\/jpeg, image\/png/],
    ['thumbnail', '?accept=image/jpeg,image/png', /accept must be one of/],
    ['metadata', '?accept=not a type', /accept: .* is not a list of media types/],
    ['rendered', '?charset=utf-8;x=1', /charset/],
    ['rendered', '?quality=5%0A', /value is not valid/],
    ['thumbnail', '?quality=80', /Unsupported query parameter "quality" for thumbnail/],
    ['thumbnail', '?window=40,400,linear', /Unsupported query parameter "window"/],
    ['thumbnail', '?viewport=100000,100000', /viewport width/],
    ['retrieve', '?viewport=1,1', /Unsupported query parameter "viewport" for retrieve \(allowed: accept, charset\)/],
    ['metadata', '?includefield=all', /Unsupported query parameter "includefield" for metadata/],
    ['frames', '?charset=utf-8', /Unsupported query parameter "charset" for frames \(allowed: accept\)/],
    ['bulkdata', '?x=1', /Unsupported query parameter "x" for bulkdata/],
    ['metadata', '?constructor=1', /Unsupported query parameter "constructor"/],
  ] as const)('%s%s', (route, qs, reason) => {
    expect(refusal(() => wadoQuery(`/p${qs}`, route, rules, 4096))).toMatch(reason);
  });

  test('the configured maximum applies', () => {
    const small = wadoQueryRules(256);
    expect(wadoQuery('/p?viewport=256,256', 'rendered', small, 256).query).toBe('?viewport=256,256');
    expect(refusal(() => wadoQuery('/p?viewport=257,256', 'rendered', small, 256))).toMatch(/from 1 to 256/);
  });
});

describe('WADO-URI (PS3.18 §9)', () => {
  const ok = 'requestType=WADO&studyUID=1.2&seriesUID=1.3&objectUID=1.4';
  test.each([
    [ok, ok],
    [`${ok}&contentType=image%2Fpng`, `${ok}&contentType=image/png`],
    [`${ok}&rows=64&columns=64&windowCenter=40&windowWidth=400&imageQuality=80&frameNumber=1`, ok],
    [`${ok}&region=0.1,0.1,0.9,0.9&annotation=patient&charset=utf-8&transferSyntax=1.2.840.10008.1.2.1`, ok],
    [`${ok}&presentationUID=1.5&presentationSeriesUID=1.6`, ok],
  ])('%s → Orthanc gets %s', (qs, query) => {
    expect(parseWadoUri(qs).query).toBe(query);
  });
  test.each([
    [`${ok}&contentType=text%2Fhtml`, /contentType must be one of application\/dicom, image\/jpeg, image\/png/],
    [`${ok}&anonymize=yes`, /anonymize is not supported/],
    [`${ok}&rows=0`, /rows must be an integer/],
    [`${ok}&columns=abc`, /columns/],
    [`${ok}&region=0.5,0.5,0.1,0.9`, /region must be/],
    [`${ok}&region=0,0,1`, /region must be/],
    [`${ok}&windowWidth=0`, /windowWidth must be > 0/],
    [`${ok}&windowCenter=x`, /windowCenter/],
    [`${ok}&imageQuality=0`, /imageQuality/],
    [`${ok}&frameNumber=0`, /frameNumber/],
    [`${ok}&transferSyntax=abc`, /transferSyntax: "abc" is not a valid UID/],
    [`${ok}&viewport=1,1`, /Unsupported query parameter "viewport" for WADO-URI/],
  ])('%s', (qs, reason) => {
    expect(refusal(() => parseWadoUri(qs))).toMatch(reason);
  });
});

describe('value checks', () => {
  test.each([
    ['2,2', '2,2'],
    ['02,2', '2,2'],
    ['5,6,0,0,-3,4', '5,6,0,0,-3,4'],
  ])('viewport %s', (v, out) => {
    expect(viewport(10)(v, 'viewport')).toBe(out);
  });
  test.each([
    ['40,400,linear', '40,400,linear'],
    ['+40.0,400.,sigmoid', '40,400,sigmoid'],
    ['-1e3,2E2,linear-exact', '-1000,200,linear-exact'],
  ])('window %s', (v, out) => {
    expect(windowing(v, 'window')).toBe(out);
  });
  test.each([
    ['utf-8', true],
    ['UTF-8,iso-8859-1;q=0.5', true],
    ['utf 8', false],
    ['', false],
  ])('charset %s', (v, ok) => {
    if (ok) expect(charset(v, 'charset')).toBe(v);
    else expect(() => charset(v, 'charset')).toThrow(BadDicomWebRequestError);
  });
  test.each([
    ['image/jpeg', 'image/jpeg'],
    ['image/jpeg;q=0.9, image/png', 'image/jpeg;q=0.9,image/png'],
    ['multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1', undefined],
    ['*/*', '*/*'],
  ])('accept %s', (v, out) => {
    expect(accept(v, 'accept')).toBe(out ?? v.replace(/; /g, ';'));
  });
  test.each([['jpeg'], ['image/jpeg;q'], ['image/jpeg;type="a"b"']])('accept %s refused', (v) => {
    expect(() => accept(v, 'accept')).toThrow(BadDicomWebRequestError);
  });
  test('a required parameter', () => {
    expect(refusal(() => checkQuery(WADO_URI_RULES, 'requestType=WADO', 'WADO-URI'))).toMatch(/studyUID is required/);
  });
});
