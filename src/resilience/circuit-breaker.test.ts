import { describe, expect, test } from 'vitest';
import { type BreakerState, CircuitBreaker, DependencyUnavailableError } from './circuit-breaker.ts';

/** A breaker with a manual clock and timers: `advance(ms)` fires what is due. */
function harness(probeResults: Array<'ok' | 'fail'>, heartbeatMs = 0) {
  let now = 0;
  const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  const changes: BreakerState[] = [];
  let probes = 0;
  const breaker = new CircuitBreaker({
    name: 'orthanc',
    retryMs: 1000,
    maxRetryMs: 3000,
    heartbeatMs,
    now: () => now,
    setTimer: (fn, ms) => {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return { cancel: () => (t.live = false) };
    },
    probe: async () => {
      const r = probeResults[probes++] ?? 'fail';
      if (r === 'fail') throw new Error('still down');
    },
    onChange: (s) => changes.push(s),
  });
  const advance = async (ms: number) => {
    now += ms;
    for (const t of timers.filter((x) => x.live && x.at <= now)) {
      t.live = false;
      t.fn();
    }
    await new Promise((r) => setImmediate(r));
  };
  return { breaker, advance, changes, probes: () => probes };
}

describe('CircuitBreaker', () => {
  test('closed: check passes; the first failure opens it and check throws with Retry-After', () => {
    const { breaker } = harness([]);
    expect(() => breaker.check()).not.toThrow();
    breaker.failure('ECONNREFUSED');
    expect(breaker.state).toBe('open');
    let err: unknown;
    try {
      breaker.check();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DependencyUnavailableError);
    expect((err as DependencyUnavailableError).dependency).toBe('orthanc');
    expect((err as DependencyUnavailableError).retryAfterSeconds).toBe(1);
    expect((err as Error).message).toContain('ECONNREFUSED');
  });

  test.each([
    [['ok'], 'closed', 1],
    [['fail', 'ok'], 'closed', 2],
    [['fail', 'fail', 'fail'], 'open', 3],
  ] as const)('probes %j → %s after %i probes', async (results, final, probes) => {
    const h = harness([...results]);
    h.breaker.failure('no answer within 30000 ms');
    // Waits double after each failed probe: 1 s, 2 s, then capped at 3 s.
    for (const ms of [1000, 2000, 3000]) await h.advance(ms);
    expect(h.breaker.state).toBe(final);
    expect(h.probes()).toBe(probes);
  });

  test('requests fail fast while the probe runs (half-open); no client request is the trial', async () => {
    let release: () => void = () => undefined;
    const breaker = new CircuitBreaker({
      name: 'database',
      retryMs: 1,
      maxRetryMs: 1,
      probe: () => new Promise<void>((r) => (release = r)),
    });
    breaker.failure('ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 20));
    expect(breaker.state).toBe('half-open');
    expect(() => breaker.check()).toThrow(DependencyUnavailableError);
    release();
    await new Promise((r) => setImmediate(r));
    expect(breaker.state).toBe('closed');
    breaker.stop();
  });

  test.each([
    [['ok', 'ok'], 'closed', 2],
    [['ok', 'fail', 'fail'], 'open', 3],
    // One failed probe followed by an answer (this process stalled, not the dependency) does not open it.
    [['ok', 'fail', 'ok'], 'closed', 3],
  ] as const)('heartbeat probes %j → %s: a hang is noticed without a failing request', async (results, final, n) => {
    const h = harness([...results], 5000);
    await h.advance(5000);
    await h.advance(5000);
    expect(h.breaker.state).toBe(final);
    expect(h.probes()).toBe(n);
    if (final === 'open') expect(h.breaker.snapshot().reason).toBe('heartbeat: still down');
  });

  test('an answer from a request already in flight closes it; snapshots say why it opened', () => {
    const { breaker, changes } = harness([]);
    breaker.failure('ECONNRESET');
    expect(breaker.snapshot()).toMatchObject({ state: 'open', reason: 'ECONNRESET', opened: 1 });
    breaker.success();
    expect(breaker.snapshot()).toEqual({ state: 'closed', opened: 1 });
    expect(changes).toEqual(['open', 'closed']);
  });
});
