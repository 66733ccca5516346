import { describe, expect, test } from 'vitest';
import { FhirError } from './errors.ts';
import { assertJsonDepth, assertSafeContent, decodeUtf8, parseFhirJson } from './json-body.ts';

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

function refusal(fn: () => unknown): { status: number; expression?: string[]; diagnostics?: string } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    return { status: err.statusCode, ...err.issues[0] } as { status: number; expression?: string[] };
  }
}

describe('parseFhirJson', () => {
  test.each([
    ['a resource', bytes('{"resourceType":"Patient","name":[{"family":"Née"}]}'), undefined],
    ['an empty body', bytes('  '), undefined],
    ['a BOM', bytes([0xef, 0xbb, 0xbf], '{"resourceType":"Patient"}'), undefined],
    ['invalid UTF-8', bytes('{"resourceType":"Patient","x":"', [0xc3, 0x28], '"}'), /UTF-8/],
    ['a lone surrogate encoded in UTF-8', bytes('{"a":"', [0xed, 0xa0, 0x80], '"}'), /UTF-8/],
    ['3,000 levels', bytes(`{"a":${'['.repeat(3000)}${']'.repeat(3000)}}`), /nests deeper than 64/],
    ['brackets inside strings do not count', bytes(`{"a":"${'['.repeat(3000)}\\"["}`), undefined],
    ['malformed JSON', bytes('{"a":'), /malformed/],
    ['__proto__', bytes('{"resourceType":"Patient","__proto__":{"x":1}}'), /Patient\.__proto__/],
    [
      'constructor deep inside',
      bytes('{"resourceType":"Patient","name":[{"constructor":1}]}'),
      /name\[0\]\.constructor/,
    ],
    ['prototype', bytes('{"resourceType":"Patient","prototype":1}'), /Patient\.prototype/],
    ['NUL in a value', bytes('{"resourceType":"Patient","gender":"a\\u0000"}'), /Patient\.gender/],
    ['NUL in a name', bytes('{"resourceType":"Patient","g\\u0000":"a"}'), /NUL/],
    ['an escaped lone surrogate', bytes('{"resourceType":"Patient","gender":"\\ud800"}'), /Patient\.gender/],
    ['an escaped lone low surrogate in a name', bytes('{"resourceType":"Patient","\\udc00":"a"}'), /surrogate/],
    ['an escaped surrogate pair', bytes('{"resourceType":"Patient","x":"\\ud834\\udd1e"}'), undefined],
  ])('%s', (_name, body, refused) => {
    const r = refusal(() => parseFhirJson(body, 64));
    if (!refused) expect(r).toBeUndefined();
    else {
      expect(r?.status).toBe(400);
      expect(JSON.stringify(r)).toMatch(refused);
    }
  });

  test('__proto__ never becomes a prototype', () => {
    const v = parseFhirJson(bytes('{"a":{"b":1}}'), 64) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
  });
});

describe('limits', () => {
  test.each([
    [63, false],
    [64, false],
    [65, true],
  ])('depth %i against a limit of 64', (depth, refused) => {
    const text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    expect(refusal(() => assertJsonDepth(text, 64)) !== undefined).toBe(refused);
    expect(refusal(() => assertSafeContent(JSON.parse(text), '$', 64)) !== undefined).toBe(refused);
  });

  test('decodeUtf8 keeps valid text as is', () => {
    expect(decodeUtf8(Buffer.from('é€𝄞'))).toBe('é€𝄞');
  });
});
