import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { type ScannableCoding, scannableCoding, SeriesUidScanner, SeriesUidTap } from './series-uid-scan.ts';

const item = (uid: string) => ({
  '0020000D': { vr: 'UI', Value: ['1.2.3'] },
  '0020000E': { vr: 'UI', Value: [uid] },
  '00080060': { vr: 'CS', Value: ['CT'] },
  '00081190': { vr: 'UR', Value: [`https://ehr/dicom-web/studies/1.2.3/series/${uid}`] },
});
const compact = (uids: string[]) => JSON.stringify(uids.map(item));
/** Orthanc's pretty-printed style: spaces around colons, one member per line, 3-space indentation. */
const pretty = (uids: string[]) => JSON.stringify(uids.map(item), null, 3).replace(/": /g, '" : ');
const valueFirst = (uids: string[]) =>
  JSON.stringify(uids.map((u) => ({ '0020000E': { Value: [u], vr: 'UI' }, '0020000D': { Value: ['9.9'], vr: 'UI' } })));

/** Feeds `text` in pieces of `size` characters. */
function scan(text: string, max: number, size: number): string[] {
  const s = new SeriesUidScanner(max);
  for (let i = 0; i < text.length; i += size) s.push(text.slice(i, i + size));
  return s.uids;
}

const THREE = ['1.2.840.1.1', '1.2.840.1.2', '2.25.33315897631352186045260848223029752'];

describe('SeriesUidScanner', () => {
  test.each([
    ['compact JSON', compact(THREE)],
    ['pretty-printed JSON', pretty(THREE)],
    ['Value before vr', valueFirst(THREE)],
    ['a lower-case tag', compact(THREE).replaceAll('0020000E', '0020000e')],
  ])('%s: the same UIDs in answer order, however the text is split', (_w, text) => {
    for (const size of [1, 2, 7, 64, 1000, text.length]) expect(scan(text, 8, size)).toEqual(THREE);
  });

  const FOUR = [...THREE, '1.2.840.1.9'];
  test.each([
    [1, FOUR.slice(0, 1)],
    [2, FOUR.slice(0, 2)],
    [8, FOUR],
  ])('stops after max=%i UIDs', (max, expected) => {
    expect(scan(compact(FOUR), max, 5)).toEqual(expected);
  });

  test.each([
    ['an empty answer', '[]', []],
    ['a repeated UID', compact(['1.2.3.4', '1.2.3.4', '1.2.3.5']), ['1.2.3.4', '1.2.3.5']],
    ['an element without Value', '[{"0020000E":{"vr":"UI"}}]', []],
    ['a UID with letters', compact(['1.2.abc']), []],
    ['a UID with an empty component', compact(['1..2']), []],
    ['a UID starting with a dot', compact(['.1.2']), []],
    ['a UID longer than 64 characters', compact([`1.${'2'.repeat(63)}`]), []],
    [
      'the tag only inside a string value',
      '[{"00081030":{"vr":"LO","Value":["\\"0020000E\\": {\\"Value\\": [\\"1.2\\"]}"]}}]',
      [],
    ],
  ])('%s gives %o', (_w, text, expected) => {
    for (const size of [3, text.length]) expect(scan(text, 8, size)).toEqual(expected);
  });
});

describe('scannableCoding', () => {
  test.each<[string | undefined, ScannableCoding | undefined]>([
    [undefined, 'identity'],
    ['', 'identity'],
    ['identity', 'identity'],
    ['gzip', 'gzip'],
    ['GZIP', 'gzip'],
    ['x-gzip', 'gzip'],
    ['deflate', 'deflate'],
    ['br', 'br'],
    ['compress', undefined],
    ['gzip, br', undefined],
    ['zstd', undefined],
  ])('Content-Encoding %o → %o', (value, coding) => {
    expect(scannableCoding(value)).toBe(coding);
  });
});

const ENCODE: Record<ScannableCoding, (b: Buffer) => Buffer> = {
  identity: (b) => b,
  gzip: (b) => gzipSync(b),
  deflate: (b) => deflateSync(b),
  br: (b) => brotliCompressSync(b),
};

/** Runs `body` in chunks of `size` through a tap; returns what came out, the reports and the order of events. */
async function tap(
  coding: ScannableCoding,
  body: Buffer,
  size: number,
  opts: { max?: number; maxScanBytes?: number } = {},
) {
  const events: string[] = [];
  let uids: string[] | undefined;
  let settled!: () => void;
  const finished = new Promise<void>((r) => (settled = r));
  const t = new SeriesUidTap({
    coding,
    max: opts.max ?? 8,
    maxScanBytes: opts.maxScanBytes ?? 1 << 20,
    onUids: (u) => {
      uids = u;
      events.push('uids');
    },
    onSettled: (err) => {
      events.push(err ? 'settled with error' : 'settled');
      settled();
    },
  });
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, async (src) => {
    for await (const c of src) out.push(c as Buffer);
  });
  await finished; // a decoder's last output may come after the stream ended
  return { out: Buffer.concat(out), uids, events };
}

describe('SeriesUidTap', () => {
  const json = Buffer.from(pretty(THREE));
  test.each<[ScannableCoding, number]>([
    ['identity', 16],
    ['identity', 100_000],
    ['gzip', 7],
    ['gzip', 100_000],
    ['deflate', 33],
    ['br', 11],
  ])('%s in chunks of %i bytes: passed on unchanged, UIDs reported once, then settled', async (coding, size) => {
    const body = ENCODE[coding](json);
    const r = await tap(coding, body, size);
    expect(Buffer.compare(r.out, body)).toBe(0);
    expect(r.uids).toEqual(THREE);
    expect(r.events).toEqual(['uids', 'settled']);
  });

  test.each<[ScannableCoding, number, number, string[]]>([
    // [coding, max, maxScanBytes, expected]
    ['identity', 2, 1 << 20, THREE.slice(0, 2)],
    ['gzip', 1, 1 << 20, THREE.slice(0, 1)],
    ['identity', 8, json.indexOf(THREE[1] as string), THREE.slice(0, 1)],
    ['gzip', 8, json.indexOf(THREE[1] as string), THREE.slice(0, 1)],
  ])('%s with max %i and %i bytes scanned at most reports %o', async (coding, max, maxScanBytes, expected) => {
    const body = ENCODE[coding](json);
    const r = await tap(coding, body, 50, { max, maxScanBytes });
    expect(Buffer.compare(r.out, body)).toBe(0);
    expect(r.uids).toEqual(expected);
  });

  test.each<[string, ScannableCoding, Buffer]>([
    ['a truncated gzip body', 'gzip', gzipSync(json).subarray(0, 200)],
    ['a body that is not gzip at all', 'gzip', json],
  ])('%s still passes through; what could be read is reported', async (_w, coding, body) => {
    const r = await tap(coding, body, 64);
    expect(Buffer.compare(r.out, body)).toBe(0);
    expect(r.events).toEqual(['uids', 'settled']);
  });

  test('an answer that fails midway reports nothing (it did not succeed) but settles', async () => {
    const events: string[] = [];
    const t = new SeriesUidTap({
      coding: 'identity',
      max: 8,
      maxScanBytes: 1 << 20,
      onUids: () => events.push('uids'),
      onSettled: (err) => events.push(err ? 'settled with error' : 'settled'),
    });
    const src = new Readable({ read() {} });
    const done = pipeline(src, t, async (s) => {
      for await (const _ of s);
    });
    src.push(json.subarray(0, 300));
    src.destroy(new Error('upstream gone'));
    await expect(done).rejects.toThrow('upstream gone');
    expect(events).toEqual(['settled with error']);
  });
});
