import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { planPublicUrls, ReplaceStream, replaceAll } from './public-url.ts';

describe('planPublicUrls', () => {
  test.each([
    [
      'http://localhost:8000',
      '/dicom-web',
      { forwarded: 'host=localhost:8000;proto=http', publicRoot: 'http://localhost:8000/dicom-web' },
    ],
    [
      'https://ehr.example.org',
      '/dicom-web',
      { forwarded: 'host=ehr.example.org;proto=https', publicRoot: 'https://ehr.example.org/dicom-web' },
    ],
    [
      'https://ehr.example.org/imaging',
      '/dicom-web/',
      {
        forwarded: 'host=ehr.example.org/imaging;proto=https',
        publicRoot: 'https://ehr.example.org/imaging/dicom-web',
      },
    ],
    [
      'https://ehr.example.org',
      '/orthanc/dicom-web',
      {
        forwarded: 'host=ehr.example.org;proto=https',
        publicRoot: 'https://ehr.example.org/dicom-web',
        rewrite: { from: 'https://ehr.example.org/orthanc/dicom-web/', to: 'https://ehr.example.org/dicom-web/' },
      },
    ],
  ])('%s with Orthanc root %s', (base, root, plan) => {
    expect(planPublicUrls(base, root)).toEqual(plan);
  });
});

async function run(chunks: string[], from: string, to: string): Promise<string> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(chunks.map((c) => Buffer.from(c))).pipe(new ReplaceStream(from, to)))
    out.push(c as Buffer);
  return Buffer.concat(out).toString();
}

describe('ReplaceStream', () => {
  const from = 'http://orthanc:8042/dicom-web/';
  const to = 'https://ehr/dicom-web/';
  const doc = `[{"00081190":{"Value":["${from}studies/1.2"]}},{"x":"${from}studies/1.3/bulk"}]`;
  const expected = doc.split(from).join(to);
  test.each([1, 2, 3, 7, 29, 30, 31, doc.length])('chunks of %i bytes', (size) => {
    const chunks: string[] = [];
    for (let i = 0; i < doc.length; i += size) chunks.push(doc.slice(i, i + size));
    return expect(run(chunks, from, to)).resolves.toBe(expected);
  });
  test('no match leaves bytes unchanged', () => expect(run(['abc', 'def'], from, to)).resolves.toBe('abcdef'));
  test('replaceAll on whole strings', () => {
    expect(replaceAll(doc, { from, to })).toBe(expected);
    expect(replaceAll(doc, undefined)).toBe(doc);
  });
});
