import { describe, expect, test } from 'vitest';
import {
  dispositionFilename,
  isValidBoundary,
  MultipartError,
  type MultipartPart,
  parseContentType,
  parseMultipart,
} from './multipart-related.ts';

/** Feeds `body` in chunks of `size` bytes (1 = byte by byte), to exercise every split point. */
async function* chunked(body: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
}

async function parseAll(body: Buffer | string, size = 1 << 20, maxPartBytes = 1 << 20): Promise<MultipartPart[]> {
  const parts: MultipartPart[] = [];
  const buf = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  for await (const p of parseMultipart(chunked(buf, size), { boundary: 'XyZ', maxPartBytes })) parts.push(p);
  return parts;
}

const two =
  '--XyZ\r\nContent-Type: application/dicom\r\n\r\nAAAA\r\n--XyZ\r\n' +
  'Content-Type: application/octet-stream\r\n\r\nBB\r\n--BB\r\n--XyZ--\r\n';

describe('parseContentType', () => {
  test.each([
    ['multipart/related; type="application/dicom"; boundary=abc', 'multipart/related', 'application/dicom', 'abc'],
    ['multipart/related; type=application/dicom; boundary=abc', 'multipart/related', 'application/dicom', 'abc'],
    ['Multipart/Related;Type="application/dicom";Boundary="a;b c"', 'multipart/related', 'application/dicom', 'a;b c'],
    ['multipart/related; boundary=abc', 'multipart/related', undefined, 'abc'],
    [
      'multipart/related; type="application/dicom+json"; boundary=x',
      'multipart/related',
      'application/dicom+json',
      'x',
    ],
    ['application/dicom', 'application/dicom', undefined, undefined],
  ])('%s', (header, mediaType, type, boundary) => {
    const ct = parseContentType(header);
    expect(ct?.mediaType).toBe(mediaType);
    expect(ct?.params['type']).toBe(type);
    expect(ct?.params['boundary']).toBe(boundary);
  });

  test.each([[undefined], [''], ['garbage'], ['/x'], ['a b/c']])('rejects %j', (header) => {
    expect(parseContentType(header)).toBeUndefined();
  });
});

describe('boundaries and file names', () => {
  test.each([
    ['abc', true],
    ['----WebKitFormBoundary7MA4YWxkTrZu0gW', true],
    ['a'.repeat(70), true],
    ['a'.repeat(71), false],
    ['', false],
    ['ends with space ', false],
    ['bad"quote', false],
  ])('isValidBoundary(%j) = %s', (b, ok) => expect(isValidBoundary(b)).toBe(ok));

  test.each([
    ['form-data; name="file"; filename="a.dcm"', 'a.dcm'],
    ['attachment; filename=b.dcm', 'b.dcm'],
    [`form-data; name="f"; filename="x.dcm"; filename*=UTF-8''M%C3%BCller.dcm`, 'Müller.dcm'],
    ['form-data; name="f"', undefined],
    [undefined, undefined],
  ])('dispositionFilename(%j) = %j', (h, name) => expect(dispositionFilename(h)).toBe(name));
});

describe('parseMultipart', () => {
  test.each([1, 2, 3, 7, 64, 1 << 20])('two parts, chunks of %i bytes', async (size) => {
    const parts = await parseAll(two, size);
    expect(parts.map((p) => [p.index, p.mediaType, p.body?.toString('latin1'), p.size, p.overLimit])).toEqual([
      [0, 'application/dicom', 'AAAA', 4, false],
      [1, 'application/octet-stream', 'BB\r\n--BB', 8, false],
    ]);
  });

  test.each([
    ['preamble and epilogue', `this is a preamble\r\n${two}epilogue text`, 2],
    ['transport padding after boundary', '--XyZ  \t\r\n\r\nA\r\n--XyZ--', 1],
    ['part without headers', '--XyZ\r\n\r\nA\r\n--XyZ--', 1],
    ['empty part body', '--XyZ\r\nContent-Type: application/dicom\r\n\r\n\r\n--XyZ--', 1],
    ['no parts at all', '--XyZ--\r\n', 0],
    ['folded header', '--XyZ\r\nContent-Type: application/dicom;\r\n type=x\r\n\r\nA\r\n--XyZ--', 1],
  ])('%s', async (_name, body, count) => {
    for (const size of [1, 5, 4096]) expect((await parseAll(body, size)).length).toBe(count);
  });

  test('binary bodies containing CR, LF and partial boundaries survive every split', async () => {
    const payload = Buffer.from([0, 13, 10, 45, 45, 88, 121, 13, 10, 45, 45, 88, 121, 255, 13]);
    const body = Buffer.concat([Buffer.from('--XyZ\r\n\r\n'), payload, Buffer.from('\r\n--XyZ--')]);
    for (const size of [1, 2, 3, 4, 5, 9, 100]) {
      const [p] = await parseAll(body, size);
      expect(p?.body).toEqual(payload);
    }
  });

  test('bodies full of partial delimiters come out whole from chunks and from body, at every chunk size', async () => {
    // Deterministic bytes from an alphabet that keeps building prefixes of the delimiter "\r\n--XyZ".
    const alphabet = [13, 10, 45, 88, 121, 90, 65];
    let seed = 7;
    const gen = (n: number) =>
      Buffer.from(
        Array.from({ length: n }, () => {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          return alphabet[seed % alphabet.length]!;
        }),
      )
        .toString('latin1')
        .replaceAll('\r\n--XyZ', '\r\n--XyA');
    const payloads = [gen(3000), gen(10), '', gen(777)].map((x) => Buffer.from(x, 'latin1'));
    const body = Buffer.concat([
      ...payloads.flatMap((p) => [Buffer.from('--XyZ\r\n\r\n'), p, Buffer.from('\r\n')]),
      Buffer.from('--XyZ--\r\n'),
    ]);
    for (const size of [1, 2, 3, 6, 7, 8, 13, 64, 1000]) {
      const parts = await parseAll(body, size, 1 << 20);
      expect(parts.map((p) => Buffer.concat(p.chunks ?? []))).toEqual(payloads);
      expect(parts.map((p) => p.body)).toEqual(payloads);
    }
  });

  test('a part body is kept as slices of the source chunks, not copied', async () => {
    const payload = Buffer.alloc(100_000, 'A');
    const source = [
      Buffer.from('--XyZ\r\nContent-Type: application/dicom\r\n\r\n'),
      ...Array.from({ length: 25 }, (_, i) => Buffer.from(payload.subarray(i * 4000, (i + 1) * 4000))),
      Buffer.from('\r\n--XyZ--\r\n'),
    ];
    async function* feed() {
      yield* source;
    }
    const parts: MultipartPart[] = [];
    for await (const p of parseMultipart(feed(), { boundary: 'XyZ', maxPartBytes: 1 << 20 })) parts.push(p);
    const chunks = parts[0]?.chunks ?? [];
    expect(Buffer.concat(chunks)).toEqual(payload);
    const sourceBuffers = new Set<ArrayBufferLike>(source.map((c) => c.buffer));
    expect(chunks.every((c) => sourceBuffers.has(c.buffer))).toBe(true);
  });

  test('a part over the limit is skipped and reported, the next part still arrives', async () => {
    const big = 'Z'.repeat(5000);
    const body = `--XyZ\r\n\r\n${big}\r\n--XyZ\r\n\r\nsmall\r\n--XyZ--`;
    for (const size of [1, 333, 10_000]) {
      const parts = await parseAll(body, size, 100);
      expect(parts.map((p) => [p.overLimit, p.size, p.body?.toString()])).toEqual([
        [true, 5000, undefined],
        [false, 5, 'small'],
      ]);
    }
  });

  test('headers are parsed with lower-case names and the file name is exposed', async () => {
    const body =
      '--XyZ\r\nContent-Disposition: form-data; name="f"; filename="ct.dcm"\r\nX-A: 1\r\nx-a: 2\r\n\r\nA\r\n--XyZ--';
    const [p] = await parseAll(body);
    expect(p?.headers).toEqual({ 'content-disposition': 'form-data; name="f"; filename="ct.dcm"', 'x-a': '1, 2' });
    expect(p?.filename).toBe('ct.dcm');
    expect(p?.mediaType).toBeUndefined();
  });

  test.each([
    ['not multipart at all', '{"not":"multipart"}', /no multipart boundary/],
    ['other boundary', '--Other\r\n\r\nA\r\n--Other--', /no multipart boundary/],
    ['truncated inside a part', '--XyZ\r\n\r\nAAAA', /no closing boundary/],
    ['truncated inside headers', '--XyZ\r\nContent-Type: appl', /inside part headers/],
    ['ends right after a boundary', '--XyZ', /ends after a boundary/],
    ['garbage after boundary', '--XyZgarbage\r\n\r\nA\r\n--XyZ--', /malformed multipart boundary/],
    ['header line without colon', '--XyZ\r\nnot a header\r\n\r\nA\r\n--XyZ--', /malformed part header/],
    ['huge headers', `--XyZ\r\nX: ${'h'.repeat(20_000)}\r\n\r\nA\r\n--XyZ--`, /headers longer/],
    ['huge preamble', `${'p'.repeat(100_000)}\r\n--XyZ\r\n\r\nA\r\n--XyZ--`, /no multipart boundary/],
  ])('%s → MultipartError', async (_name, body, message) => {
    for (const size of [1, 4096]) {
      if (size === 1 && body.length > 10_000) continue;
      const err = await parseAll(body, size).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MultipartError);
      expect((err as Error).message).toMatch(message);
    }
  });

  test('parts already complete are yielded before a later framing error', async () => {
    const seen: string[] = [];
    const err = await (async () => {
      for await (const p of parseMultipart(chunked(Buffer.from('--XyZ\r\n\r\nA\r\n--XyZ\r\n\r\nBB'), 3), {
        boundary: 'XyZ',
        maxPartBytes: 100,
      }))
        seen.push(p.body!.toString());
    })().catch((e: unknown) => e);
    expect(seen).toEqual(['A']);
    expect(err).toBeInstanceOf(MultipartError);
  });

  test('an invalid boundary parameter is refused', async () => {
    const err = await (async () => {
      for await (const _ of parseMultipart(chunked(Buffer.from('x'), 1), { boundary: 'a"b', maxPartBytes: 1 }));
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MultipartError);
  });
});
