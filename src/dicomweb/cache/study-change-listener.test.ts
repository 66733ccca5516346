import { describe, expect, test } from 'vitest';
import { InvalidChannelError, NotifyListener } from '../../db/notify-listener.ts';
import { SeriesCache } from './series-cache.ts';
import { parseStudyPayload } from './study-change-listener.ts';

describe('parseStudyPayload', () => {
  test.each([
    ['1.2.840.10008.1', { study: '1.2.840.10008.1', origin: '' }],
    ['1.2.3 4f1c-origin', { study: '1.2.3', origin: '4f1c-origin' }],
    ['', { study: undefined, origin: '' }],
    [' 4f1c-origin', { study: undefined, origin: '4f1c-origin' }],
    // Not a DICOM UID: "any study" (never a missed key).
    ['urn:oid:1.2.3', { study: undefined, origin: '' }],
    ['1.2.x', { study: undefined, origin: '' }],
    [`1.${'2'.repeat(70)}`, { study: undefined, origin: '' }],
  ])('%j', (payload, expected) => {
    expect(parseStudyPayload(payload)).toEqual(expected);
  });
});

describe('SeriesCache suspend/resume (the change signal is down/up)', () => {
  const answer = { headers: { 'content-type': 'application/dicom+json' }, body: Buffer.from('[]') };
  const make = () => new SeriesCache({ maxBytes: 10_000, ttlMs: 60_000, maxEntryBytes: 1000 });

  test('suspended: nothing is served or stored, and what was held is gone', () => {
    const c = make();
    c.put('k', c.ticket('s'), answer);
    expect(c.get('k')).toBeDefined();
    c.suspend();
    expect(c.enabled).toBe(false);
    expect(c.get('k')).toBeUndefined();
    expect(c.put('k2', c.ticket('s'), answer)).toBe(false);
    expect(c.size).toBe(0);
  });

  test('resumed: serves again from empty; a fetch that started before the resume is not stored', () => {
    const c = make();
    c.put('k', c.ticket('s'), answer);
    c.suspend();
    const before = c.ticket('s');
    c.resume();
    expect(c.enabled).toBe(true);
    expect(c.get('k')).toBeUndefined();
    expect(c.put('k', before, answer)).toBe(false);
    expect(c.put('k', c.ticket('s'), answer)).toBe(true);
    expect(c.get('k')).toBe(answer);
  });
});

describe('NotifyListener', () => {
  const handlers = { onNotify() {}, onUp() {}, onDown() {} };
  const log = { info() {}, warn() {}, error() {} };
  test.each(['ehr_study_changed', 'ehr_auth_changed', 'a'])('accepts the channel %j', (channel) => {
    expect(
      () =>
        new NotifyListener({
          databaseUrl: 'postgres://x',
          channels: [channel],
          handlers,
          log,
          name: 'n',
          subject: 's',
        }),
    ).not.toThrow();
  });
  test.each(['Ehr', 'ehr-changed', 'x; DROP TABLE users', '', '1abc'])('refuses the channel %j', (channel) => {
    expect(
      () =>
        new NotifyListener({
          databaseUrl: 'postgres://x',
          channels: [channel],
          handlers,
          log,
          name: 'n',
          subject: 's',
        }),
    ).toThrow(InvalidChannelError);
  });
});
