import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { DicomWebError } from '../errors.ts';
import { decodeBody } from './linked-search.ts';

const json = Buffer.from('[{"0020000D":{"vr":"UI","Value":["1.2.3"]}}]');

describe('decodeBody: the content codings an Orthanc answer may come in', () => {
  test.each([
    ['no coding', json, undefined],
    ['identity', json, 'identity'],
    ['gzip', gzipSync(json), 'gzip'],
    ['x-gzip', gzipSync(json), 'x-gzip'],
    ['GZIP with spaces', gzipSync(json), ' GZIP '],
    ['deflate (zlib, RFC 9110 §8.4.1.2)', deflateSync(json), 'deflate'],
    ['deflate sent raw', deflateRawSync(json), 'deflate'],
    ['br', brotliCompressSync(json), 'br'],
  ])('%s', (_name, raw, coding) => {
    expect(decodeBody(raw, coding).equals(json)).toBe(true);
  });

  test('an unknown coding is the archive’s fault (502), not readable JSON', () => {
    expect(() => decodeBody(json, 'compress')).toThrow(DicomWebError);
  });
});
