import { describe, expect, test } from 'vitest';
import { MetricsListenError, parseListen } from './listen.ts';

describe('parseListen', () => {
  test.each([
    { value: '127.0.0.1:9464', want: { host: '127.0.0.1', port: 9464 } },
    { value: '[::1]:9464', want: { host: '::1', port: 9464 } },
    { value: 'localhost:0', want: { host: 'localhost', port: 0 } },
  ])('$value', ({ value, want }) => {
    expect(parseListen(value)).toEqual(want);
  });
  test.each(['9464', '127.0.0.1', '127.0.0.1:99999', ':9464', 'a:b'])('refuses %s', (value) => {
    expect(() => parseListen(value)).toThrow(MetricsListenError);
  });
});
