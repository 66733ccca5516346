import { describe, expect, test } from 'vitest';
import { CircuitBreaker } from '../resilience/circuit-breaker.ts';
import { BREAKER_STATE_METRIC, breakerSamples, breakerStateValue, registerBreakerGauge } from './breaker.ts';
import { registry } from './registry.ts';

describe('breakerStateValue', () => {
  test.each([
    { state: 'closed', want: 0 },
    { state: 'half-open', want: 0.5 },
    { state: 'open', want: 1 },
  ] as const)('$state → $want', ({ state, want }) => {
    expect(breakerStateValue(state)).toBe(want);
  });
});

describe('breakerSamples', () => {
  test('one sample per breaker, labelled by dependency', () => {
    expect(
      breakerSamples([
        { name: 'orthanc', state: 'open' },
        { name: 'database', state: 'closed' },
      ]),
    ).toEqual([
      { labels: { dependency: 'orthanc' }, value: 1 },
      { labels: { dependency: 'database' }, value: 0 },
    ]);
  });
});

describe('ehr_breaker_state in the registry', () => {
  /** A breaker whose probe timer fires only when the test says so, and whose probe answers when the test says so. */
  function manualBreaker(name: string) {
    let fire: (() => void) | undefined;
    let answer: (() => void) | undefined;
    const breaker = new CircuitBreaker({
      name,
      retryMs: 1000,
      maxRetryMs: 1000,
      probe: () =>
        new Promise<void>((resolve) => {
          answer = resolve;
        }),
      setTimer: (fn) => {
        fire = fn;
        return { cancel: () => (fire = undefined) };
      },
    });
    return { breaker, fireTimer: () => fire?.(), answerProbe: () => answer?.() };
  }

  const scrape = async () => (await registry.getSingleMetricAsString(BREAKER_STATE_METRIC)) ?? '';

  test('follows each breaker through closed, open, half-open and closed again', async () => {
    const orthanc = manualBreaker('orthanc');
    const database = manualBreaker('database');
    registerBreakerGauge(() => [orthanc.breaker, database.breaker]);

    expect(await scrape()).toContain('ehr_breaker_state{dependency="orthanc"} 0');
    expect(await scrape()).toContain('ehr_breaker_state{dependency="database"} 0');

    orthanc.breaker.failure('connect ECONNREFUSED');
    expect(await scrape()).toContain('ehr_breaker_state{dependency="orthanc"} 1');
    expect(await scrape()).toContain('ehr_breaker_state{dependency="database"} 0');

    orthanc.fireTimer();
    expect(orthanc.breaker.state).toBe('half-open');
    expect(await scrape()).toContain('ehr_breaker_state{dependency="orthanc"} 0.5');

    orthanc.answerProbe();
    await new Promise((r) => setImmediate(r));
    expect(orthanc.breaker.state).toBe('closed');
    expect(await scrape()).toContain('ehr_breaker_state{dependency="orthanc"} 0');
    orthanc.breaker.stop();
    database.breaker.stop();
  });
});
