import { type CommonQueryMethods, sql } from 'slonik';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** Name of the (single) consumer of Orthanc's change log in `change_feed_cursor`. */
export const CONSUMER = 'orthanc';

/** Another consumer advanced the cursor since we read it: our view is stale, so nothing is written. */
export class CursorMovedError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CHANGE_FEED_CURSOR_MOVED';
  override name = 'CursorMovedError';
  constructor(expected: number, actual: number) {
    super(`change-feed cursor moved from ${expected} to ${actual} under us`);
  }
}

/** The stored cursor, or `undefined` before the first run. */
export async function readCursor(db: CommonQueryMethods): Promise<number | undefined> {
  const row = (await db.maybeOne(sql.unsafe`
    SELECT last_seq FROM change_feed_cursor WHERE consumer = ${CONSUMER}`)) as { last_seq: number | string } | null;
  return row === null ? undefined : Number(row.last_seq);
}

/** Creates the cursor at `seq` if there is none yet; returns the stored value either way. */
export async function initCursor(db: CommonQueryMethods, seq: number): Promise<number> {
  await db.query(sql.unsafe`
    INSERT INTO change_feed_cursor (consumer, last_seq) VALUES (${CONSUMER}, ${seq})
    ON CONFLICT (consumer) DO NOTHING`);
  return (await readCursor(db)) ?? seq;
}

/**
 * Inside the transaction of a change: locks the cursor row and checks that it still holds `expected`. Two consumers
 * applying the same change serialise on this lock, and the second one fails here instead of applying it twice.
 */
export async function claimCursor(tx: CommonQueryMethods, expected: number): Promise<void> {
  const row = (await tx.maybeOne(sql.unsafe`
    SELECT last_seq FROM change_feed_cursor WHERE consumer = ${CONSUMER} FOR UPDATE`)) as {
    last_seq: number | string;
  } | null;
  const actual = row === null ? -1 : Number(row.last_seq);
  if (actual !== expected) throw new CursorMovedError(expected, actual);
}

/** Moves the claimed cursor forward (in the same transaction as {@link claimCursor}). */
export async function advanceCursor(tx: CommonQueryMethods, seq: number): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE change_feed_cursor SET last_seq = ${seq}, updated_at = now()
    WHERE consumer = ${CONSUMER} AND last_seq < ${seq}`);
}

/** Sets the cursor regardless of its value (operator restart from scratch, or Orthanc's log was recreated). */
export async function resetCursor(db: CommonQueryMethods, seq: number): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO change_feed_cursor (consumer, last_seq) VALUES (${CONSUMER}, ${seq})
    ON CONFLICT (consumer) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()`);
}
