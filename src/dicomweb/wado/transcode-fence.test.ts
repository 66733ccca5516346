import { describe, expect, test } from 'vitest';
import { fenceTranscoding, parseAccept } from './transcode-fence.ts';

const OCTET = 'multipart/related; type="application/octet-stream"';
const DICOM = 'multipart/related; type="application/dicom"';
const AS_STORED_DICOM = `${DICOM}; transfer-syntax=*`;

describe('parseAccept', () => {
  test('splits ranges, keeps quoted parameters, lower-cases media and type', () => {
    expect(parseAccept(`${OCTET}; transfer-syntax=1.2.840.10008.1.2.1, Multipart/Related; type="image/JPEG"`)).toEqual([
      {
        media: 'multipart/related',
        type: 'application/octet-stream',
        transferSyntax: '1.2.840.10008.1.2.1',
        raw: `${OCTET}; transfer-syntax=1.2.840.10008.1.2.1`,
      },
      {
        media: 'multipart/related',
        type: 'image/jpeg',
        transferSyntax: undefined,
        raw: 'Multipart/Related; type="image/JPEG"',
      },
    ]);
    expect(parseAccept(undefined)).toEqual([]);
  });
});

describe('fenceTranscoding: Orthanc is never asked to convert compressed pixel data', () => {
  test.each([
    // frames: the stored encoding is forwarded alone
    [`${OCTET}; transfer-syntax=*`, true, { action: 'forward', accept: `${OCTET}; transfer-syntax=*` }],
    [`image/jpeg, ${OCTET}; transfer-syntax=*`, true, { action: 'forward', accept: `${OCTET}; transfer-syntax=*` }],
    // frames in an uncompressed syntax (also the default): only from uncompressed data
    [undefined, true, { action: 'check-stored', accept: undefined }],
    [OCTET, true, { action: 'check-stored', accept: OCTET }],
    [`${OCTET}; transfer-syntax=1.2.840.10008.1.2.1`, true, { action: 'check-stored' }],
    [`multipart/related; type="image/jpeg", ${OCTET}`, true, { action: 'check-stored', accept: OCTET }],
    // a compressed target: refused
    ['multipart/related; type="image/jls"', true, { action: 'refuse' }],
    ['multipart/related; type="image/jp2"', true, { action: 'refuse' }],
    ['multipart/related; type="image/jpeg"', true, { action: 'refuse' }],
    [`${OCTET}; transfer-syntax=1.2.840.10008.1.2.4.50`, true, { action: 'refuse' }],
    [`${DICOM}; transfer-syntax=1.2.840.10008.1.2.4.80`, false, { action: 'refuse' }],
    // retrieval of Part 10 files: the stored encoding, with a Warning
    [undefined, false, { action: 'forward', accept: AS_STORED_DICOM, warning: expect.stringMatching(/stored/) }],
    [DICOM, false, { action: 'forward', accept: AS_STORED_DICOM }],
    ['*/*', false, { action: 'forward', accept: AS_STORED_DICOM }],
    [`${DICOM}; transfer-syntax=1.2.840.10008.1.2.1`, false, { action: 'forward', accept: AS_STORED_DICOM }],
    [AS_STORED_DICOM, false, { action: 'forward', accept: AS_STORED_DICOM }],
  ] as const)('%s (frames %s) → %j', (accept, frames, decision) => {
    expect(fenceTranscoding(accept, frames)).toMatchObject(decision);
  });

  test('a refusal names what was asked and what to ask for instead', () => {
    const d = fenceTranscoding('multipart/related; type="image/jls"', true);
    expect(d).toMatchObject({ action: 'refuse', reason: expect.stringContaining('image/jls') });
    expect(d.action === 'refuse' && d.reason).toContain('transfer-syntax=*');
  });
});
