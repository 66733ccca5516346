import { describe, expect, test } from 'vitest';
import { DependencyUnavailableError } from '../resilience/circuit-breaker.ts';
import { isDatabaseUnavailable } from './spill.ts';

const err = (props: Record<string, unknown>, cause?: unknown) =>
  Object.assign(new Error(String(props['message'] ?? 'x')), props, cause ? { cause } : {});

describe('isDatabaseUnavailable (what the audit spill takes)', () => {
  test.each([
    ['slonik ConnectionError', err({ name: 'ConnectionError' }), true],
    ['backend terminated', err({ name: 'BackendTerminatedError' }), true],
    ['refused socket, as cause', err({ name: 'Error' }, err({ code: 'ECONNREFUSED' })), true],
    ['not yet accepting connections (57P03)', err({ code: '57P03' }), true],
    ['admin shutdown (57P01)', err({ code: '57P01' }), true],
    ['connection exception class 08', err({ code: '08006' }), true],
    ['pg: Connection terminated unexpectedly', err({ message: 'Connection terminated unexpectedly' }), true],
    ['the database breaker is open', new DependencyUnavailableError('database', 5, 'connect ECONNREFUSED'), true],
    ["Orthanc's breaker is open", new DependencyUnavailableError('orthanc', 5, 'connect ECONNREFUSED'), false],
    ['pg: Query read timeout (a hung server)', err({ message: 'Query read timeout' }), true],
    ['raised by a trigger (P0001)', err({ code: 'P0001', message: 'audit store refused' }), false],
    ['unique violation', err({ code: '23505' }), false],
    ['plain error', new Error('boom'), false],
    ['not an error', 'nope', false],
  ])('%s → %s', (_name, e, expected) => {
    expect(isDatabaseUnavailable(e)).toBe(expected);
  });
});
