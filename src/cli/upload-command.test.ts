import { describe, expect, test } from 'vitest';
import { DEFAULT_UPLOAD_SCOPE } from './backend-token.ts';
import { parseUploadArgs, UploadUsageError } from './upload-command.ts';

const base = ['dir', '--url', 'http://ehr:8000/'];

describe('parseUploadArgs: authentication', () => {
  test.each([
    ['--token', [...base, '--token', 'T'], {}, { token: 'T', client: undefined }],
    ['EHR_TOKEN', base, { EHR_TOKEN: 'E' }, { token: 'E', client: undefined }],
    [
      '--client with defaults',
      [...base, '--client', 'pacs', '--key', 'k.json'],
      { EHR_TOKEN: 'E' },
      { client: { id: 'pacs', key: 'k.json', scope: DEFAULT_UPLOAD_SCOPE } },
    ],
    [
      '--client with every option',
      [
        ...base,
        '--client',
        'pacs',
        '--key',
        'k.pem',
        '--alg',
        'ES384',
        '--kid',
        'k1',
        '--scope',
        'system/*.cruds',
        '--token-url',
        'https://as/token/',
      ],
      {},
      {
        client: {
          id: 'pacs',
          key: 'k.pem',
          alg: 'ES384',
          kid: 'k1',
          scope: 'system/*.cruds',
          tokenUrl: 'https://as/token',
        },
      },
    ],
  ])('%s', (_name, argv, env, expected) => {
    expect(parseUploadArgs(argv, env)).toMatchObject({ url: 'http://ehr:8000', ...expected });
  });

  test.each([
    [[...base, '--client', 'pacs'], /--client needs --key/],
    [[...base, '--client', 'pacs', '--key', 'k', '--token', 'T'], /either --token or --client/],
    [[...base, '--key', 'k'], /--key is only used with --client/],
    [[...base, '--token', 'T', '--scope', 'system/*.rs'], /--scope is only used with --client/],
    [[...base, '--client', 'pacs', '--key', 'k', '--token-url', 'ftp://x'], /--token-url must be an http/],
    [[...base, '--client', 'pacs', '--key', 'k', '--scope', ' '], /--scope must not be empty/],
    [[...base, '--client'], /--client needs a value/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseUploadArgs(argv, {})).toThrow(UploadUsageError);
    expect(() => parseUploadArgs(argv, {})).toThrow(message);
  });
});
