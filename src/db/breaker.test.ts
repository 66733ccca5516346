import { BackendTerminatedUnexpectedlyError, ConnectionError, UniqueIntegrityConstraintViolationError } from 'slonik';
import { expect, test } from 'vitest';
import { OrthancUnavailableError } from '../orthanc/errors.ts';
import { isDatabaseFault } from './breaker.ts';

const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test.each([
  [new ConnectionError('connect ECONNREFUSED'), true],
  [new BackendTerminatedUnexpectedlyError(new Error('Connection terminated unexpectedly')), true],
  [new Error('Query read timeout'), true],
  [new Error('wrapped', { cause: coded('ECONNREFUSED') }), true],
  [coded('57P01', 'terminating connection due to administrator command'), true],
  [coded('08006'), true],
  // answers, not outages
  [coded('23505', 'duplicate key'), false],
  [new UniqueIntegrityConstraintViolationError(coded('23505') as never), false],
  [coded('57014', 'canceling statement due to statement timeout'), false],
  [new Error('invalid input'), false],
  // Orthanc's refused connection is Orthanc's fault
  [new OrthancUnavailableError('Orthanc unavailable: ECONNREFUSED', false, { cause: coded('ECONNREFUSED') }), false],
])('%s → %s', (err, fault) => {
  expect(isDatabaseFault(err)).toBe(fault);
});
