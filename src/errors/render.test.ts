import { describe, expect, test } from 'vitest';
import { OAuthError } from '../auth/server/errors.ts';
import { BadDicomWebRequestError, DicomWebError, StudyNotFoundError } from '../dicomweb/errors.ts';
import { DependencyUnavailableError } from '../resilience/circuit-breaker.ts';
import { OrthancUnavailableError } from '../orthanc/errors.ts';
import {
  describeError,
  dicomErrorBody,
  renderDicom,
  renderFhir,
  renderJson,
  renderOAuth,
  sendRendered,
  warningHeader,
} from './render.ts';

const fastify = (statusCode: number, message: string, code = 'FST_ERR_X') =>
  Object.assign(new Error(message), { statusCode, code });

describe('describeError: readable status and reason, never a stack', () => {
  test.each([
    [new BadDicomWebRequestError('limit must be an integer'), 400, 'limit must be an integer'],
    [new StudyNotFoundError(), 404, 'Not found'],
    [new DicomWebError(406, 'x'), 406, 'x'],
    [
      new OrthancUnavailableError('image archive unavailable: no answer', true),
      504,
      'The image archive did not answer in time',
    ],
    [
      new OrthancUnavailableError('image archive unavailable: ECONNREFUSED', false),
      502,
      'The image archive is unavailable',
    ],
    [new DependencyUnavailableError('orthanc', 2, 'down'), 503, 'The image archive is unavailable; retry later'],
    [new DependencyUnavailableError('database', 2, 'down'), 503, 'The EHR database is unavailable; retry later'],
    [
      Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
      503,
      'The EHR database is unavailable; retry later',
    ],
    [fastify(415, 'Unsupported Media Type'), 415, 'Unsupported Media Type'],
    [fastify(502, 'upstream'), 500, 'internal error'],
    [new TypeError('secret internals'), 500, 'internal error'],
    [undefined, 500, 'internal error'],
  ])('%s', (err, statusCode, message) => {
    expect(describeError(err)).toMatchObject({ statusCode, message });
  });

  test('a dependency down carries Retry-After in every dialect', () => {
    const err = new DependencyUnavailableError('database', 7, 'down');
    for (const r of [renderFhir(err, 'r'), renderDicom(err), renderJson(err, 'r')]) {
      expect([r.statusCode, r.headers['retry-after']]).toEqual([503, '7']);
    }
  });
});

describe('warningHeader (RFC 9110 §5.5 quoted-string)', () => {
  test.each([
    ['Not found', '299 - "Not found"'],
    ['quote " and \\ backslash', '299 - "quote \\" and \\\\ backslash"'],
    ['limit must be an integer >= 1 (got "x")', '299 - "limit must be an integer >= 1 (got \\"x\\")"'],
    ['non-ascii Müller\r\nX', '299 - "non-ascii M?ller??X"'],
    ['x'.repeat(500), `299 - "${'x'.repeat(400)}"`],
  ])('%j', (text, header) => expect(warningHeader(text)).toBe(header));
});

describe('the dialects', () => {
  test('DICOM: the error body is DICOM JSON with ErrorComment', () => {
    expect(JSON.parse(dicomErrorBody('Not found'))).toEqual({ '00000902': { vr: 'LO', Value: ['Not found'] } });
    const r = renderDicom(new StudyNotFoundError());
    expect([r.statusCode, r.body, r.headers['warning']]).toEqual([
      404,
      dicomErrorBody('Not found'),
      '299 - "Not found"',
    ]);
  });

  test('FHIR: a Fastify 413 names the body limit; an unexpected error quotes only the request id', () => {
    const big = renderFhir(fastify(413, 'Request body is too large'), 'r', { bodyLimit: 10 });
    expect(big.body.issue).toEqual([{ severity: 'error', code: 'too-long', diagnostics: 'body larger than 10 bytes' }]);
    const boom = renderFhir(new Error('secret'), 'req-9');
    expect([boom.statusCode, boom.body.issue[0]?.code, boom.body.issue[0]?.diagnostics]).toEqual([
      500,
      'exception',
      'internal error; request id req-9',
    ]);
  });

  test('OAuth: invalid_client is 401 with WWW-Authenticate; never cached', () => {
    const r = renderOAuth(new OAuthError('invalid_client', 'unknown client'));
    expect(r.statusCode).toBe(401);
    expect(r.headers).toEqual({ 'cache-control': 'no-store', 'www-authenticate': 'Bearer error="invalid_client"' });
    expect(r.body).toEqual({ error: 'invalid_client', error_description: 'unknown client' });
  });

  test('plain JSON keeps a Fastify code; sendRendered sends status, headers and body', () => {
    const r = renderJson(fastify(400, 'body/name must be string', 'FST_ERR_VALIDATION'), 'req-1');
    expect(r.body).toEqual({ error: 'body/name must be string', code: 'FST_ERR_VALIDATION', requestId: 'req-1' });
    const calls: unknown[] = [];
    type Reply = { code(s: number): Reply; header(n: string, v: string): Reply; send(b: unknown): Reply };
    const reply: Reply = {
      code(s) {
        calls.push(['code', s]);
        return reply;
      },
      header(n, v) {
        calls.push([n, v]);
        return reply;
      },
      send(b) {
        calls.push(['send', b]);
        return reply;
      },
    };
    sendRendered(reply, renderJson(new DependencyUnavailableError('database', 3, 'down'), 'q'));
    expect(calls).toEqual([
      ['code', 503],
      ['retry-after', '3'],
      [
        'send',
        { error: 'The EHR database is unavailable; retry later', code: 'EHR_DEPENDENCY_UNAVAILABLE', requestId: 'q' },
      ],
    ]);
  });
});
