/**
 * The per-process writer's append: one statement, one round trip, one commit per batch.
 *
 * The locking append (store.ts `appendAuditEvents`: BEGIN, SELECT … FOR UPDATE, INSERT, UPDATE, COMMIT) costs five
 * round trips to PostgreSQL while the chain-head lock is held, and every audited read waits for them. This appender
 * remembers the chain head it last wrote and links the batch after it optimistically, in a single auto-committed
 * statement: `audit_append` (a plpgsql function, so its plan is cached per connection) moves the head
 * only if it is still where this process left it (compare-and-set) and then inserts the batch, given as one JSON
 * array. Under READ COMMITTED, an UPDATE that meets a row changed
 * by a concurrent transaction waits for it and re-checks its WHERE on the new version
 * (https://www.postgresql.org/docs/15/transaction-iso.html#XACT-READ-COMMITTED), so the statement either links the
 * whole batch right after the current head or writes nothing. When another writer moved the head (another replica, a
 * FHIR write's event, the change feed), the head is read again and the batch re-linked; after {@link MAX_ATTEMPTS}
 * lost races it falls back to the locking append.
 */
import { sql } from 'slonik';
import type { AuditItem } from './compact.ts';
import {
  AuditAppendError,
  type AuditDb,
  appendAuditEvents,
  type ChainHead,
  linkAfter,
  readChainHead,
  type StoredAuditEvent,
} from './store.ts';

/** Optimistic attempts before taking the chain-head lock. */
export const MAX_ATTEMPTS = 3;

export class ChainAppender {
  readonly #db: AuditDb;
  /** The head as this process last wrote or read it; undefined until known (or after a lost race). */
  #head: ChainHead | undefined;
  /** Statistics, for tests and diagnostics. */
  readonly stats = { optimistic: 0, retries: 0, locked: 0 };

  constructor(db: AuditDb) {
    this.#db = db;
  }

  /**
   * Links `events` (BALP events or compact records), in order, as the next links of the chain and commits them; all
   * or none.
   */
  async append(events: readonly AuditItem[]): Promise<StoredAuditEvent[]> {
    if (events.length === 0) return [];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const expected = this.#head ?? (await readChainHead(this.#db));
      const linked = linkAfter(expected, events);
      const inserted = Number(
        await this.#db.oneFirst(sql.unsafe`
          SELECT audit_append(${expected.seq}, ${expected.hash}, ${linked.head.seq}, ${linked.head.hash},
                              ${linked.json}::jsonb)`),
      );
      if (inserted !== 0 && inserted !== linked.rows.length) throw new AuditAppendError(linked.rows.length, inserted);
      if (inserted === linked.rows.length) {
        this.#head = linked.head;
        this.stats.optimistic++;
        return linked.stored;
      }
      // Someone else moved the head: nothing was written; learn the new head and link again.
      this.#head = undefined;
      this.stats.retries++;
    }
    this.stats.locked++;
    const stored = await appendAuditEvents(this.#db, events);
    const last = stored[stored.length - 1];
    this.#head = last ? { seq: last.seq, hash: last.hash } : undefined;
    return stored;
  }
}
