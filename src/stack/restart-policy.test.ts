import { describe, expect, test } from 'vitest';
import { DEFAULT_RESTART_POLICY as P, decideRestart, exitReason } from './restart-policy.ts';

const NOW = 1_000_000;

describe('decideRestart', () => {
  test.each([
    [[], { action: 'restart', delayMs: 1000 }],
    [[NOW - 5000], { action: 'restart', delayMs: 2000 }],
    [[NOW - 3000, NOW - 2000, NOW - 1000], { action: 'restart', delayMs: 8000 }],
    // Restarts older than the window no longer count: back to the base delay.
    [[NOW - 120_000, NOW - 90_000, NOW - 61_000], { action: 'restart', delayMs: 1000 }],
    [[NOW - 50_000, NOW - 40_000, NOW - 30_000, NOW - 20_000, NOW - 10_000], { action: 'give-up', recent: 5 }],
  ])('%#: %j → %j', (times, decision) => {
    expect(decideRestart(times, NOW, P)).toEqual(decision);
  });

  test('the delay is capped', () => {
    const policy = { ...P, maxRestarts: 100 };
    const times = Array.from({ length: 20 }, (_, i) => NOW - i);
    expect(decideRestart(times, NOW, policy)).toEqual({ action: 'restart', delayMs: P.maxDelayMs });
  });
});

describe('exitReason', () => {
  test.each([
    [null, 'SIGKILL', undefined, 'killed by SIGKILL'],
    [1, null, undefined, 'exit code 1'],
    [null, 'SIGKILL', 'no answer to health checks', 'no answer to health checks (killed by SIGKILL)'],
  ] as const)('%s %s %s → %s', (code, signal, why, text) => {
    expect(exitReason(code, signal, why)).toBe(text);
  });
});
