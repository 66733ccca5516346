/**
 * Boundary fuzzing on the real stack: several hundred malformed inputs at every door the facade has (STOW-RS parts,
 * multipart framing and headers, FHIR JSON and search parameters, bearer JWTs and OAuth requests, WADO-RS rendered and
 * thumbnail parameters). The inputs are generated from a fixed seed, so a failure names an input that reproduces.
 *
 * For every input: the answer is not a 5xx and comes within the upstream timeout. Inputs meant to be refused are
 * refused (4xx, or a STOW answer that stored nothing). Afterwards Orthanc and PostgreSQL still answer, and neither the
 * EHR's rows nor Orthanc's instance count moved.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import dcmjs from 'dcmjs';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../src/stack/process.ts';
import { bearer, signWithServerKey, tokenFor } from './helpers/auth.ts';
import { makeSeries, newUid, pydicomFile } from './helpers/dicom.ts';
import { dbFingerprint } from './helpers/fhir.ts';
import { testConfig } from './helpers/app.ts';
import { buildApp } from '../src/app.ts';
import {
  type Booked,
  bookPatientAndOrder,
  multipartBody,
  orthanc,
  orthancJson,
  STOW_TYPE,
  stowAll,
} from './helpers/stow.ts';

/** A small deterministic PRNG (mulberry32), so that every generated input reproduces from the seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(0x5eed15);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;

interface Input {
  name: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** 'refuse': must be a 4xx (or a STOW answer with nothing stored); 'any': any answer but a 5xx. */
  expect: 'refuse' | 'any';
}

let app: FastifyInstance;
let port = 0;
let upstreamTimeoutMs = 30_000;
let admin: { authorization: string };
let booked: Booked;
let study: { studyUid: string; seriesUid: string; sopUid: string };
let base: Buffer;

/** Orthanc's own count of stored instances. */
async function orthancInstances(): Promise<number> {
  const stats = await orthancJson<{ CountInstances: number }>('/statistics');
  return stats.CountInstances;
}

/**
 * Rows the EHR keeps beyond the FHIR resources: stored uploads, the reconciliation queue, tokens. Upload log rows of
 * refused attempts are a record of the attempt (like the audit trail), not a change, so only stored instances count.
 */
async function ehrFingerprint(): Promise<string> {
  const row = await app.db.one(sql.unsafe`
    SELECT (SELECT coalesce(sum(number_stored), 0) FROM dicom_upload_logs)::int AS stored,
           (SELECT count(*) FROM dicom_unmatched)::int AS unmatched,
           (SELECT count(*) FROM authorization_codes)::int AS codes,
           (SELECT count(*) FROM refresh_tokens)::int AS refresh,
           (SELECT count(*) FROM oauth_clients)::int AS clients,
           (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM patient_grants)::int AS grants`);
  return `${await dbFingerprint(app)} ${JSON.stringify(row)}`;
}

/** Sends one input over a real socket (so that framing reaches the HTTP parser as sent); bounded in time. */
async function send(input: Input): Promise<{ status: number; body: string; ms: number }> {
  const started = Date.now();
  // Header values outside printable ASCII go out byte for byte: fetch would refuse or re-encode them.
  if (Object.values(input.headers ?? {}).some((v) => /[^\x20-\x7e]/.test(v))) {
    return { ...(await sendRaw(rawRequest(input))), ms: Date.now() - started };
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), upstreamTimeoutMs + 5_000);
  try {
    const res = await fetch(`http://127.0.0.1:${port}${input.url}`, {
      method: input.method,
      headers: input.headers ?? {},
      ...(input.body !== undefined ? { body: input.body } : {}),
      signal: ctl.signal,
    });
    const body = await res.text();
    return { status: res.status, body, ms: Date.now() - started };
  } catch (err) {
    if (ctl.signal.aborted)
      return { status: -1, body: 'no answer within the upstream timeout', ms: Date.now() - started };
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** An input as HTTP/1.1 bytes, headers exactly as given. */
function rawRequest(input: Input): Buffer {
  const body = input.body === undefined ? Buffer.alloc(0) : Buffer.from(input.body);
  const head = Object.entries({ host: '127.0.0.1', ...input.headers, 'content-length': String(body.length) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([
    Buffer.from(`${input.method} ${input.url} HTTP/1.1\r\nconnection: close\r\n${head}\r\n`, 'latin1'),
    body,
  ]);
}

/** Raw bytes on a socket, for framing that fetch refuses to produce; answers the status line's code. */
function sendRaw(bytes: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ status: -1, body: 'no answer within the upstream timeout' });
    }, upstreamTimeoutMs + 5_000);
    sock.on('data', (c) => chunks.push(c));
    const done = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(0, 500) });
    };
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', done);
    sock.write(bytes);
    // Half-close: the server sees the end of the request even where the framing is broken.
    setTimeout(() => sock.end(), 200);
  });
}

/** Part 10 bytes of the template instance with attributes set (string, or a raw Value array) or removed (null). */
function dicomWith(
  changes: Record<string, { vr: string; Value: unknown[] } | null>,
  meta: Record<string, unknown> = {},
) {
  const ab = base.buffer.slice(base.byteOffset, base.byteOffset + base.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(ab);
  const sop = newUid();
  dict.dict['00080018'] = { vr: 'UI', Value: [sop] };
  dict.meta['00020003'] = { vr: 'UI', Value: [sop] };
  for (const [tag, v] of Object.entries(changes)) {
    if (v === null) delete dict.dict[tag];
    else dict.dict[tag] = v;
  }
  Object.assign(dict.meta, meta);
  // Over-long values are part of the test: dcmjs is told to write them as they are.
  return Buffer.from(dict.write({ allowInvalidVRLength: true }));
}

/** Raw byte edits of a Part 10 file: the element headers of the template, corrupted in place. */
function corrupt(bytes: Buffer, kind: 'truncate' | 'flip' | 'length'): Buffer {
  const out = Buffer.from(bytes);
  // The first 2 KB hold the meta header and the identifying attributes; edits there reach the parsers' hard cases.
  const at = 132 + Math.floor(rnd() * Math.min(2048, out.length - 140));
  if (kind === 'truncate') return out.subarray(0, at);
  if (kind === 'flip') {
    for (let i = 0; i < 8; i++) out[at + i] = Math.floor(rnd() * 256);
    return out;
  }
  out.writeUInt32LE(0xfffffff0 - Math.floor(rnd() * 1000), at);
  return out;
}

function stowInputs(): Input[] {
  const b = `fz-${randomUUID()}`;
  const ok = (file: Buffer, name: string, url = '/dicom-web/studies'): Input => ({
    name,
    method: 'POST',
    url,
    headers: { ...admin, 'content-type': STOW_TYPE(b), accept: 'application/dicom+json' },
    body: multipartBody([file], b),
    expect: 'refuse',
  });
  const ids = (extra: Record<string, { vr: string; Value: unknown[] } | null>) => ({
    '00100020': { vr: 'LO', Value: [booked.mrn] },
    '00080050': { vr: 'SH', Value: [booked.accession] },
    '0020000D': { vr: 'UI', Value: [newUid()] },
    ...extra,
  });
  const out: Input[] = [];
  const bad: [string, Record<string, { vr: string; Value: unknown[] } | null>][] = [
    ['NUL in AccessionNumber', { '00080050': { vr: 'SH', Value: [`${booked.accession}\u0000x`] } }],
    ['NUL in PatientID', { '00100020': { vr: 'LO', Value: [`${booked.mrn}\u0000`] } }],
    ['multi-valued PatientID', { '00100020': { vr: 'LO', Value: [booked.mrn, 'OTHER'] } }],
    ['multi-valued AccessionNumber', { '00080050': { vr: 'SH', Value: [booked.accession, 'X'] } }],
    ['multi-valued StudyInstanceUID', { '0020000D': { vr: 'UI', Value: [newUid(), newUid()] } }],
    ['multi-valued SeriesInstanceUID', { '0020000E': { vr: 'UI', Value: [newUid(), newUid()] } }],
    ['no SOPInstanceUID', { '00080018': null }],
    ['no StudyInstanceUID', { '0020000D': null }],
    ['no SeriesInstanceUID', { '0020000E': null }],
    ['no SOPClassUID', { '00080016': null }],
    ['letters in StudyInstanceUID', { '0020000D': { vr: 'UI', Value: ['1.2.abc.4'] } }],
    ['StudyInstanceUID of 80 characters', { '0020000D': { vr: 'UI', Value: [`1.${'2'.repeat(78)}`] } }],
    ['empty StudyInstanceUID', { '0020000D': { vr: 'UI', Value: [''] } }],
    ['900 KB PatientName', { '00100010': { vr: 'PN', Value: [{ Alphabetic: `${'A'.repeat(900_000)}^B` }] } }],
    ['900 KB AccessionNumber', { '00080050': { vr: 'SH', Value: ['A'.repeat(900_000)] } }],
    ['unknown PatientID', { '00100020': { vr: 'LO', Value: [`NOPE-${randomUUID()}`] } }],
    ['unknown AccessionNumber', { '00080050': { vr: 'SH', Value: [`NOPE-${randomUUID()}`] } }],
    ['foreign StudyInstanceUID', { '0020000D': { vr: 'UI', Value: ['__linked__'] } }],
  ];
  for (const [name, change] of bad) {
    const resolved = Object.fromEntries(
      Object.entries(ids(change)).map(([k, v]) =>
        v && v.Value[0] === '__linked__' ? [k, { ...v, Value: [study.studyUid] }] : [k, v],
      ),
    );
    out.push(ok(dicomWith(resolved), `STOW ${name}`));
  }
  for (const ts of ['', '1.2.3.4.5.6', 'not-a-uid', '1.2.840.10008.1.2.4.999']) {
    out.push(ok(dicomWith(ids({}), { '00020010': { vr: 'UI', Value: [ts] } }), `STOW transfer syntax '${ts}'`));
  }
  // Invalid UTF-8 under ISO_IR 192: the bytes are placed in the file as they are (dcmjs would re-encode a string).
  {
    const marker = 'ZZZZZZZZ';
    const f = dicomWith(
      ids({ '00081030': { vr: 'LO', Value: [marker] }, '00080005': { vr: 'CS', Value: ['ISO_IR 192'] } }),
    );
    const at = f.indexOf(marker);
    f[at] = 0xc3;
    f[at + 1] = 0x28;
    f[at + 2] = 0xff;
    out.push(ok(f, 'STOW invalid UTF-8 in StudyDescription'));
  }
  for (let i = 0; i < 40; i++) {
    const kind = pick(['truncate', 'flip', 'length'] as const);
    // A fresh study and SOP per input: no corrupted file can collide with a stored one.
    const f = corrupt(dicomWith(ids({})), kind);
    out.push({ ...ok(f, `STOW corrupted (${kind} #${i})`), expect: 'any' });
  }
  out.push(ok(Buffer.from('not dicom at all'), 'STOW text part'));
  out.push(ok(Buffer.alloc(0), 'STOW empty part'));
  out.push(ok(Buffer.alloc(131), 'STOW short preamble'));
  out.push(ok(Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')]), 'STOW preamble only'));
  out.push(ok(dicomWith(ids({})), 'STOW to a malformed study URL', '/dicom-web/studies/nope'));
  out.push(ok(dicomWith(ids({})), 'STOW to another study URL', `/dicom-web/studies/${newUid()}`));
  return out;
}

function multipartInputs(): Input[] {
  // A file that would be stored and linked if its framing were right: only the framing can refuse it.
  const file = dicomWith({
    '00100020': { vr: 'LO', Value: [booked.mrn] },
    '00080050': { vr: 'SH', Value: [booked.accession] },
    '0020000D': { vr: 'UI', Value: [newUid()] },
  });
  const b = 'fzb';
  const good = multipartBody([file], b);
  const post = (
    name: string,
    contentType: string,
    body: Buffer | string,
    extra: Record<string, string> = {},
  ): Input => ({
    name: `multipart ${name}`,
    method: 'POST',
    url: '/dicom-web/studies',
    headers: { ...admin, 'content-type': contentType, ...extra },
    body,
    expect: 'refuse',
  });
  const inputs: Input[] = [
    post('no boundary', 'multipart/related; type="application/dicom"', good),
    { ...post('no type', `multipart/related; boundary=${b}`, good), expect: 'any' },
    post('wrong type', `multipart/related; type="text/plain"; boundary=${b}`, good),
    post('not multipart', 'application/dicom', file),
    post('json', 'application/json', '{"a":1}'),
    post('empty body', STOW_TYPE(b), ''),
    post('boundary mismatch', STOW_TYPE('other'), good),
    post('no closing delimiter', STOW_TYPE(b), good.subarray(0, good.length - 8)),
    post('only closing delimiter', STOW_TYPE(b), `--${b}--\r\n`),
    post('no part headers end', STOW_TYPE(b), `--${b}\r\nContent-Type: application/dicom\r\n`),
    post('part of text/plain', STOW_TYPE(b), multipartBody([{ body: file, type: 'text/plain' }], b)),
    post(
      'nested multipart',
      STOW_TYPE(b),
      multipartBody([{ body: good, type: `multipart/related; boundary=${b}` }], b),
    ),
    post('boundary of 300 characters', STOW_TYPE('x'.repeat(300)), multipartBody([file], 'x'.repeat(300))),
    {
      ...post(
        'header line of 100 KB',
        STOW_TYPE(b),
        Buffer.concat([Buffer.from(`--${b}\r\nX-A: ${'a'.repeat(100_000)}\r\n`), good]),
      ),
      expect: 'any',
    },
    post('gzip that is not', STOW_TYPE(b), good, { 'content-encoding': 'gzip' }),
    post('unknown content coding', STOW_TYPE(b), good, { 'content-encoding': 'zstd-bogus' }),
    post('1000 empty parts', STOW_TYPE(b), `${`--${b}\r\n\r\n\r\n`.repeat(1000)}--${b}--\r\n`),
    {
      ...post(
        'type with a control character',
        `multipart/related; type="application/dicom\u0001"; boundary=${b}`,
        good,
      ),
      expect: 'any',
    },
    { ...post('charset garbage', `${STOW_TYPE(b)}; charset=ÿÿ`, good), expect: 'any' },
  ];
  for (let i = 0; i < 20; i++) {
    const cut = Math.floor(rnd() * good.length);
    const junk = Buffer.from(Array.from({ length: 16 }, () => Math.floor(rnd() * 256)));
    inputs.push({
      ...post(`spliced junk #${i}`, STOW_TYPE(b), Buffer.concat([good.subarray(0, cut), junk])),
      expect: 'any',
    });
  }
  return inputs;
}

/** Requests whose framing fetch cannot produce: bad chunk sizes, duplicate lengths, broken request lines. */
function rawInputs(): { name: string; bytes: Buffer }[] {
  const auth = `Authorization: ${admin.authorization}\r\n`;
  const r = (name: string, text: string) => ({ name: `raw ${name}`, bytes: Buffer.from(text, 'latin1') });
  return [
    r(
      'bad chunk size',
      `POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: ${STOW_TYPE('b')}\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n`,
    ),
    r(
      'two content lengths',
      `POST /fhir/Patient HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/fhir+json\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}`,
    ),
    r(
      'length and chunked',
      `POST /fhir/Patient HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ),
    r('NUL in path', `GET /fhir/Pat\u0000ient HTTP/1.1\r\nHost: x\r\n${auth}\r\n`),
    r('space in header name', `GET /fhir/Patient HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n${auth}\r\n`),
    r('HTTP/9', `GET /fhir/Patient HTTP/9.9\r\nHost: x\r\n${auth}\r\n`),
    r(
      'empty Expect',
      `POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: ${STOW_TYPE('b')}\r\nExpect:\r\nContent-Length: 8\r\n\r\n--b--\r\n\r\n`,
    ),
    r(
      'odd Expect',
      `POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: ${STOW_TYPE('b')}\r\nExpect: 999-nope\r\nContent-Length: 8\r\n\r\n--b--\r\n\r\n`,
    ),
  ];
}

function fhirInputs(): Input[] {
  const post = (name: string, body: string | Buffer, type = 'application/fhir+json', url = '/fhir/Patient'): Input => ({
    name: `FHIR ${name}`,
    method: 'POST',
    url,
    headers: { ...admin, 'content-type': type },
    body,
    expect: 'refuse',
  });
  const P = (extra: object) => JSON.stringify({ resourceType: 'Patient', ...extra });
  const deep = (n: number) =>
    `{"resourceType":"Patient","extension":[${'{"url":"http://x","extension":['.repeat(n)}${']}'.repeat(n)}]}`;
  const inputs: Input[] = [
    post('not JSON', 'resourceType=Patient'),
    post('truncated JSON', '{"resourceType":"Patient","name":[{"family":"x"'),
    post('JSON null', 'null'),
    post('JSON number', '42'),
    post('JSON array', '[{"resourceType":"Patient"}]'),
    post('JSON string', '"Patient"'),
    post('empty body', ''),
    post('nested 3000 levels', deep(3000)),
    post('nested 200 levels', deep(200)),
    post('array nested 5000 levels', `{"resourceType":"Patient","x":${'['.repeat(5000)}${']'.repeat(5000)}}`),
    post('900 KB family name', P({ name: [{ family: 'F'.repeat(900_000) }] })),
    post('NUL in family', P({ name: [{ family: 'A\u0000B' }] })),
    post(
      'invalid UTF-8',
      Buffer.concat([
        Buffer.from('{"resourceType":"Patient","name":[{"family":"'),
        Buffer.from([0xc3, 0x28, 0xff]),
        Buffer.from('"}]}'),
      ]),
    ),
    post('lone surrogate escape', '{"resourceType":"Patient","name":[{"family":"\\ud800"}]}'),
    post('wrong resourceType', JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'x' } })),
    post('no resourceType', JSON.stringify({ name: [{ family: 'x' }] })),
    post('gender robot', P({ gender: 'robot' })),
    post('__proto__ element', '{"resourceType":"Patient","__proto__":{"admin":true}}'),
    post('constructor element', '{"resourceType":"Patient","constructor":{"prototype":{"x":1}}}'),
    post('unknown element', P({ favouriteColour: 'blue' })),
    post('birthDate garbage', P({ birthDate: '1970-13-45' })),
    post('name not an array', P({ name: { family: 'x' } })),
    post('active a string', P({ active: 'yes' })),

    post(
      'script narrative',
      P({
        text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>' },
      }),
    ),
    post(
      'onclick narrative',
      P({ text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml" onclick="x()">a</div>' } }),
    ),
    post('narrative not XHTML', P({ text: { status: 'generated', div: '<p>unclosed' } })),
    post('dangling contained reference', P({ managingOrganization: { reference: '#x' } })),
    post(
      'extension outside its context',
      P({
        extension: [
          {
            url: 'http://hl7.org/fhir/StructureDefinition/servicerequest-precondition',
            valueCodeableConcept: { text: 'x' },
          },
        ],
      }),
    ),
    post('extension without url', P({ extension: [{ valueString: 'x' }] })),
    post(
      'reference to an Endpoint as subject',
      JSON.stringify({
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        code: { text: 'CT' },
        subject: { reference: 'Endpoint/x' },
      }),
      'application/fhir+json',
      '/fhir/ServiceRequest',
    ),
    post(
      'malformed reference',
      JSON.stringify({
        resourceType: 'ServiceRequest',
        status: 'active',
        intent: 'order',
        code: { text: 'CT' },
        subject: { reference: '../../etc/passwd' },
      }),
      'application/fhir+json',
      '/fhir/ServiceRequest',
    ),
    post('XML body', '<Patient xmlns="http://hl7.org/fhir"/>', 'application/fhir+xml'),
    post('text/plain', P({}), 'text/plain'),
    post('body over the limit', P({ name: [{ family: 'F'.repeat(2_000_000) }] })),
  ];
  inputs.push({
    name: 'FHIR PUT id with spaces',
    method: 'PUT',
    url: '/fhir/Patient/a%20b%20c',
    headers: { ...admin, 'content-type': 'application/fhir+json' },
    body: P({ id: 'a b c', name: [{ family: 'x' }] }),
    expect: 'refuse',
  });
  inputs.push({
    name: 'FHIR PUT id mismatch',
    method: 'PUT',
    url: `/fhir/Patient/${booked.patientId}`,
    headers: { ...admin, 'content-type': 'application/fhir+json' },
    body: P({ id: 'other', name: [{ family: 'x' }] }),
    expect: 'refuse',
  });
  inputs.push({
    name: 'FHIR PATCH garbage',
    method: 'PATCH',
    url: `/fhir/Patient/${booked.patientId}`,
    headers: { ...admin, 'content-type': 'application/json-patch+json' },
    body: '[{"op":"explode","path":"/x"}]',
    expect: 'refuse',
  });
  inputs.push({
    name: 'FHIR PATCH to __proto__',
    method: 'PATCH',
    url: `/fhir/Patient/${booked.patientId}`,
    headers: { ...admin, 'content-type': 'application/json-patch+json' },
    body: '[{"op":"add","path":"/__proto__/polluted","value":1}]',
    expect: 'refuse',
  });
  // Random mutations of a valid Patient: a field replaced by a value of the wrong JSON type.
  const fields = ['name', 'gender', 'birthDate', 'identifier', 'telecom', 'address', 'active', 'meta', 'text', 'id'];
  const wrong = [42, true, 'x', { a: 1 }, [1, 2], null, -1.5, '', '\u0000', [null]];
  for (let i = 0; i < 30; i++) {
    const f = pick(fields);
    let v = pick(wrong);
    // Values that happen to be valid for the field are replaced with one that cannot be.
    if ((f === 'active' && typeof v === 'boolean') || (f === 'id' && v === 'x')) v = { a: 1 };
    inputs.push(post(`Patient.${f} = ${JSON.stringify(v)} #${i}`, P({ [f]: v })));
  }
  return inputs;
}

function searchInputs(): Input[] {
  const get = (name: string, url: string): Input => ({
    name: `search ${name}`,
    method: 'GET',
    url,
    headers: admin,
    expect: 'any',
  });
  const out: Input[] = [
    get('_count=-1', '/fhir/Patient?_count=-1'),
    get('_count=abc', '/fhir/Patient?_count=abc'),
    get('_count=1e9', '/fhir/Patient?_count=1000000000'),
    get('date garbage', '/fhir/Patient?birthdate=notadate'),
    get('date prefix garbage', '/fhir/Patient?birthdate=zz2020'),
    get('_sort unknown', '/fhir/Patient?_sort=nope'),
    get('unknown param strict', '/fhir/Patient?nope=1'),
    get('NUL in value', '/fhir/Patient?name=a%00b'),
    get('bad percent encoding', '/fhir/Patient?name=%ZZ'),
    get('half percent', '/fhir/Patient?name=%E2%82'),
    get('overlong value', `/fhir/Patient?name=${'a'.repeat(20_000)}`),
    get('_include garbage', '/fhir/ServiceRequest?_include=::::'),
    get('_include unknown', '/fhir/ServiceRequest?_include=ServiceRequest:nope'),
    get('1000 ids', `/fhir/Patient?_id=${Array.from({ length: 1000 }, (_, i) => `id${i}`).join(',')}`),
    get('unknown modifier', '/fhir/Patient?name:frobnicate=x'),
    get('token of pipes', '/fhir/Patient?identifier=||||||'),
    get('chained garbage', '/fhir/ServiceRequest?subject.name.x.y=1'),
    get('reference garbage', '/fhir/ServiceRequest?subject=Patient/../../x'),
    get('_elements garbage', '/fhir/Patient?_elements=__proto__,constructor'),
    get('param __proto__', '/fhir/Patient?__proto__=1'),
    get('cursor garbage', '/fhir/Patient?_cursor=!!!'),
    get('_total garbage', '/fhir/Patient?_total=everything'),
    get('read id of 5000 chars', `/fhir/Patient/${'a'.repeat(5000)}`),
    get('read id with dots', '/fhir/Patient/..%2F..%2Fetc'),
    get('unknown type', '/fhir/Nope'),
    get('history garbage', '/fhir/Patient/_history?_since=yesterday'),
    get('_format garbage', '/fhir/Patient?_format=application/x-evil'),
    get('AuditEvent date garbage', '/fhir/AuditEvent?date=ge1999-99'),
    get('AuditEvent entity garbage', '/fhir/AuditEvent?entity=%00'),
    get('QIDO limit garbage', '/dicom-web/studies?limit=abc'),
    get('QIDO offset negative', '/dicom-web/studies?offset=-5'),
    get('QIDO unknown keyword', '/dicom-web/studies?NotAKeyword=1'),
    get('QIDO bad hex tag', '/dicom-web/studies?0010ZZZZ=1'),
    get('QIDO NUL', '/dicom-web/studies?PatientID=%00'),
    get('QIDO date garbage', '/dicom-web/studies?StudyDate=2020-99'),
    get('QIDO includefield garbage', '/dicom-web/studies?includefield=%00%01'),
    get('metadata of a malformed UID', '/dicom-web/studies/1..2/metadata'),
    get('frames 0', `/dicom-web/studies/${'1.2.3'}/series/1.2.3/instances/1.2.3/frames/0`),
    get('frames garbage', '/dicom-web/studies/1.2.3/series/1.2.3/instances/1.2.3/frames/a,b'),
  ];
  for (let i = 0; i < 20; i++) {
    const bytes = Array.from(
      { length: 1 + Math.floor(rnd() * 12) },
      () =>
        `%${Math.floor(rnd() * 256)
          .toString(16)
          .padStart(2, '0')}`,
    ).join('');
    out.push(
      get(
        `random bytes #${i}`,
        `/fhir/${pick(['Patient', 'ServiceRequest', 'ImagingStudy', 'Encounter'])}?${pick(['name', 'identifier', 'date', '_id', 'patient', 'status', '_count'])}=${bytes}`,
      ),
    );
  }
  return out;
}

async function tokenInputs(): Promise<Input[]> {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: `http://127.0.0.1:${port}/auth`,
    aud: `http://127.0.0.1:${port}/fhir`,
    sub: 'test-admin',
    scope: 'user/*.cruds',
    iat: now,
    exp: now + 300,
  };
  const b64 = (o: object | string) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
  const get = (name: string, token: string): Input => ({
    name: `JWT ${name}`,
    method: 'GET',
    url: pick(['/fhir/Patient', '/dicom-web/studies', '/fhir/AuditEvent', '/api/v1/dicom/unmatched']),
    headers: { authorization: `Bearer ${token}` },
    expect: 'refuse',
  });
  const good = (
    await tokenFor(app, { user: { username: 'test-admin', roles: ['admin'] }, scope: 'user/*.cruds' })
  ).split('.');
  const inputs: Input[] = [
    get('alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`),
    get('two parts', `${good[0]}.${good[1]}`),
    get('four parts', `${good.join('.')}.x`),
    get('garbage', 'garbage'),
    get('empty', ''),
    get('NUL', 'a\u0001b.c.d'),
    get('header not JSON', `${b64('{{{')}.${good[1]}.${good[2]}`),
    get('payload not JSON', `${good[0]}.${b64('{{{')}.${good[2]}`),
    get('signature swapped', `${good[0]}.${b64({ ...claims, sub: 'someone-else' })}.${good[2]}`),
    get('signature truncated', `${good[0]}.${good[1]}.${good[2]?.slice(0, 10)}`),
    get('HS256 confusion', `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.${b64('sig')}`),
    get('huge token', 'a'.repeat(100_000)),
    get('kid traversal', `${b64({ alg: 'ES256', kid: '../../etc/passwd' })}.${b64(claims)}.${good[2]}`),
    get('jku header', `${b64({ alg: 'RS256', jku: 'http://127.0.0.1:1/jwks' })}.${b64(claims)}.${good[2]}`),
  ];
  const signed = async (name: string, c: Record<string, unknown>) =>
    get(name, await signWithServerKey(app, c as never));
  inputs.push(await signed('expired', { ...claims, exp: now - 3600, iat: now - 7200 }));
  inputs.push(await signed('not yet valid', { ...claims, nbf: now + 3600 }));
  inputs.push(await signed('no exp', { ...claims, exp: undefined }));
  inputs.push(await signed('foreign issuer', { ...claims, iss: 'http://evil.example/auth' }));
  inputs.push(await signed('foreign audience', { ...claims, aud: 'http://evil.example/fhir' }));
  inputs.push(await signed('unknown user', { ...claims, sub: `ghost-${randomUUID()}` }));
  inputs.push(await signed('scope an array', { ...claims, scope: ['user/*.cruds'] }));
  inputs.push(await signed('scope of NUL', { ...claims, scope: 'user/*.cruds\u0000' }));
  inputs.push(await signed('patient an object', { ...claims, patient: { id: 'x' } }));
  inputs.push(await signed('sub an object', { ...claims, sub: { $ne: '' } }));
  inputs.push(await signed('exp a string', { ...claims, exp: 'tomorrow' }));
  inputs.push(await signed('exp far future', { ...claims, exp: now + 10 * 365 * 86400 }));

  const form = (
    name: string,
    path: string,
    body: string,
    type = 'application/x-www-form-urlencoded',
    extra = {},
  ): Input => ({
    name: `OAuth ${name}`,
    method: 'POST',
    url: path,
    headers: { 'content-type': type, ...extra },
    body,
    expect: 'refuse',
  });
  const q = (o: Record<string, string>) => new URLSearchParams(o).toString();
  inputs.push(
    form('no grant_type', '/auth/token', q({ code: 'x' })),
    form('unknown grant_type', '/auth/token', q({ grant_type: 'password', username: 'a', password: 'b' })),
    form(
      'garbage code',
      '/auth/token',
      q({ grant_type: 'authorization_code', code: 'x', redirect_uri: 'http://x', code_verifier: 'v', client_id: 'c' }),
    ),
    form('garbage refresh token', '/auth/token', q({ grant_type: 'refresh_token', refresh_token: 'x' })),
    form('refresh token of NUL', '/auth/token', q({ grant_type: 'refresh_token', refresh_token: '\u0000' })),
    form(
      'garbage client assertion',
      '/auth/token',
      q({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: 'a.b.c',
        scope: 'system/*.rs',
      }),
    ),
    form(
      'assertion alg none',
      '/auth/token',
      q({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: `${b64({ alg: 'none' })}.${b64({ iss: 'x', sub: 'x', aud: 'x', exp: now + 60, jti: 'j' })}.`,
        scope: 'system/*.rs',
      }),
    ),
    form('JSON body', '/auth/token', '{"grant_type":"client_credentials"}', 'application/json'),
    form('form body of 200 KB', '/auth/token', q({ grant_type: 'refresh_token', refresh_token: 'r'.repeat(200_000) })),
    form(
      'repeated grant_type',
      '/auth/token',
      'grant_type=refresh_token&grant_type=authorization_code&refresh_token=x',
    ),
    form('introspect without auth', '/auth/introspect', q({ token: good.join('.') })),
    form('revoke garbage', '/auth/revoke', q({ token: '\u0000', token_type_hint: 'nope' })),
    form('broken percent encoding', '/auth/token', 'grant_type=%ZZ&code=%'),
  );
  const authorize = (name: string, params: Record<string, string>): Input => ({
    name: `OAuth authorize ${name}`,
    method: 'GET',
    url: `/auth/authorize?${q(params)}`,
    expect: 'any',
  });
  inputs.push(
    authorize('no params', {}),
    authorize('unknown client', {
      response_type: 'code',
      client_id: `nope-${randomUUID()}`,
      redirect_uri: 'http://evil/',
      state: 's',
      code_challenge: 'x',
      code_challenge_method: 'S256',
      scope: 'openid',
    }),
    authorize('token response type', { response_type: 'token', client_id: 'x', redirect_uri: 'http://evil/' }),
    authorize('plain PKCE', {
      response_type: 'code',
      client_id: 'x',
      code_challenge: 'x',
      code_challenge_method: 'plain',
    }),
    authorize('NUL scope', { response_type: 'code', client_id: 'x', scope: '\u0000' }),
    authorize('huge state', { response_type: 'code', client_id: 'x', state: 's'.repeat(50_000) }),
  );
  return inputs;
}

function renderedInputs(): Input[] {
  const inst = `/dicom-web/studies/${study.studyUid}/series/${study.seriesUid}/instances/${study.sopUid}`;
  const bad = [
    'viewport=100000,100000',
    'viewport=4097,4097',
    'viewport=0,10',
    'viewport=-1,-1',
    'viewport=abc',
    'viewport=1,2,3,4,5,6,7',
    'viewport=1e9,1',
    'quality=0',
    'quality=101',
    'quality=abc',
    'window=abc',
    'window=1,2',
    'window=1,2,NOPE',
    'window=NaN,NaN,linear',
    'annotation=everything',
    'nope=1',
    'charset=%00',
    'viewport=%00',
    'quality=50&quality=60&viewport=1,1&viewport=99999,99999',
  ];
  const out: Input[] = [];
  for (const target of [`${inst}/rendered`, `${inst}/thumbnail`, `${inst}/frames/1/rendered`]) {
    for (const params of bad) {
      out.push({
        name: `rendered ${target.split('/').pop()} ?${params}`,
        method: 'GET',
        url: `${target}?${params}`,
        headers: { ...admin, accept: 'image/jpeg' },
        expect: 'refuse',
      });
    }
  }
  return out;
}

beforeAll(async () => {
  port = await freePort();
  const config = testConfig({ publicBaseUrl: `http://127.0.0.1:${port}` });
  upstreamTimeoutMs = config.upstreamTimeoutMs;
  app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  admin = bearer(await tokenFor(app, { user: { username: 'test-admin', roles: ['admin'] }, scope: 'user/*.cruds' }));
  booked = await bookPatientAndOrder(app, admin);
  const series = makeSeries({ patientId: booked.mrn, accession: booked.accession, count: 1 });
  await stowAll(app, admin, series.files);
  study = { studyUid: series.studyUid, seriesUid: series.seriesUid, sopUid: series.sopUids[0] as string };
  base = pydicomFile('CT_small.dcm');
}, 120_000);

afterAll(async () => {
  await app?.close();
});

/** Counts the instances a STOW-RS answer reports as stored (ReferencedSOPSequence items). */
function storedIn(body: string): number {
  if (!body.includes('"00081199"')) return 0;
  try {
    const json = JSON.parse(body) as Record<string, { Value?: unknown[] }>;
    return json['00081199']?.Value?.length ?? 0;
  } catch {
    return 0;
  }
}

describe('malformed inputs at every boundary', () => {
  let inputs: Input[] = [];
  beforeAll(async () => {
    inputs = [
      ...stowInputs(),
      ...multipartInputs(),
      ...fhirInputs(),
      ...searchInputs(),
      ...(await tokenInputs()),
      ...renderedInputs(),
    ];
  });

  test('at least 300 inputs, every kind of boundary covered', () => {
    expect(inputs.length + rawInputs().length).toBeGreaterThanOrEqual(300);
    for (const kind of ['STOW', 'multipart', 'FHIR', 'search', 'JWT', 'OAuth', 'rendered']) {
      expect(inputs.filter((i) => i.name.startsWith(kind)).length, kind).toBeGreaterThanOrEqual(10);
    }
  });

  test('inputs that may be answered either way: none is a 5xx or hangs', async () => {
    const failures: string[] = [];
    for (const input of inputs.filter(
      (i) => i.expect === 'any' && (!process.env.FUZZ_ONLY || new RegExp(process.env.FUZZ_ONLY).test(i.name)),
    )) {
      const res = await send(input);
      if (res.status === -1 || res.status >= 500) {
        failures.push(
          `${input.name}: ${input.method} ${input.url.slice(0, 120)} -> ${res.status} ${res.body.slice(0, 300)}`,
        );
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
  }, 900_000);

  test('inputs that must be refused: each is refused, none is a 5xx or hangs, and nothing changed', async () => {
    const beforeEhr = await ehrFingerprint();
    const beforeOrthanc = await orthancInstances();
    const failures: string[] = [];
    for (const input of inputs.filter((i) => i.expect === 'refuse')) {
      const res = await send(input);
      const what = `${input.name}: ${input.method} ${input.url.slice(0, 120)} -> ${res.status} ${res.body.slice(0, 300)}`;
      if (res.status === -1 || res.status >= 500) failures.push(what);
      else if (
        res.status < 400 &&
        (input.url.startsWith('/dicom-web/studies') && input.method === 'POST' ? storedIn(res.body) > 0 : true)
      ) {
        failures.push(`accepted: ${what}`);
      }
    }
    for (const r of rawInputs()) {
      const res = await sendRaw(r.bytes);
      if (res.status === -1 || res.status >= 500) {
        failures.push(`${r.name} -> ${res.status} ${res.body.slice(0, 200)}`);
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(await orthancInstances()).toBe(beforeOrthanc);
    expect(await ehrFingerprint()).toBe(beforeEhr);
  }, 900_000);

  test('Orthanc and PostgreSQL still answer afterwards', async () => {
    expect((await orthanc('/system')).status).toBe(200);
    expect(await app.db.oneFirst(sql.unsafe`SELECT 1`)).toBe(1);
  });
});
