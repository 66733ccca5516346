import { expect, test } from 'vitest';
import { HUNG_LIMIT, probeDecision } from './container-probe.ts';

test.each([
  // ready → healthy, counter reset
  [true, true, 2, { exit: 0, hung: 0, kill: false }],
  // alive but a dependency is down → unhealthy, never killed
  [false, true, 2, { exit: 1, hung: 0, kill: false }],
  // no answer at all → counted; killed at the limit
  [false, false, 0, { exit: 1, hung: 1, kill: false }],
  [false, false, HUNG_LIMIT - 1, { exit: 1, hung: HUNG_LIMIT, kill: true }],
])('ready %s, live %s, counted %i → %j', (ready, live, counted, decision) => {
  expect(probeDecision(ready, live, counted)).toEqual(decision);
});
