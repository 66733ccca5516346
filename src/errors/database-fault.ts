/**
 * Whether an error says the EHR database is unreachable or hung (a fault of the connection), rather than refusing a
 * statement (an SQL error is an answer). Used by the database's circuit breaker and by the error renderers (503).
 */
import { BackendTerminatedError, BackendTerminatedUnexpectedlyError, ConnectionError } from 'slonik';

/** Network error codes and SQLSTATEs of class 08 (connection exception) and 57P0x (shutdown, crash, starting up). */
export const FAULT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '57P01',
  '57P02',
  '57P03',
]);
const FAULT_MESSAGE = /query read timeout|connection terminated|timeout expired|connection timeout/i;

/** Whether `err` (or one of its causes) says the database is unreachable or hung, rather than refusing a statement. */
export function isDatabaseFault(err: unknown): boolean {
  // Orthanc's client errors carry the same network codes in their cause; they are Orthanc's faults.
  if ((err as Error | undefined)?.name === 'OrthancUnavailableError') return false;
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (
      e instanceof ConnectionError ||
      e instanceof BackendTerminatedError ||
      e instanceof BackendTerminatedUnexpectedlyError
    ) {
      return true;
    }
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && FAULT_CODES.has(code)) return true;
    if (typeof message === 'string' && FAULT_MESSAGE.test(message)) return true;
  }
  return false;
}
