import { sql } from 'slonik';
import { getChanges, lastChangeSeq } from '../orthanc/changes.ts';
import { type ChangeAction, planPage } from './classify.ts';
import { advanceCursor, CursorMovedError, claimCursor, initCursor, readCursor, resetCursor } from './cursor.ts';
import { sweepDeletions } from './deletions.ts';
import { type IndexDeps, indexStudyChange } from './index-study.ts';
import { sleep } from './leadership.ts';
import { sweepOrphans } from './sweep.ts';

/** Most studies one orphan sweep indexes (the rest wait for the next sweep). */
const ORPHANS_PER_SWEEP = 100;

export interface ConsumerOptions {
  pollMs: number;
  batchSize: number;
  /** Where a consumer without a stored cursor starts: the whole log, or Orthanc's current last change. */
  startAt: 'beginning' | 'latest';
  deletionSweepMs: number;
  /** Longest back-off after repeated failures. */
  maxBackoffMs: number;
}

export interface ConsumerLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
  debug(o: object, m: string): void;
}

/**
 * The consumer of Orthanc's `/changes` (run by the leader only). Each change is applied in its own EHR transaction
 * that also moves the cursor, so after a crash or restart the feed resumes exactly after the last committed change:
 * no gap (the cursor never passes an uncommitted change) and no duplicate (a committed change moved the cursor).
 * A failing change is retried with back-off and never skipped.
 */
export class ChangeFeedConsumer {
  readonly #deps: IndexDeps;
  readonly #opts: ConsumerOptions;
  readonly #log: ConsumerLog;
  #lastSweep = 0;
  /** A full orphan sweep (with instance counts) is due: at start, and after the feed recovered from failures. */
  #reconcileDue = true;
  /** With `startAt: latest`, studies last updated before this are not the feed's (see sweep.ts). */
  readonly #startedAt = new Date(Date.now() - 60_000);

  constructor(deps: IndexDeps, opts: ConsumerOptions, log: ConsumerLog) {
    this.#deps = deps;
    this.#opts = opts;
    this.#log = log;
  }

  /** The stored cursor, created on first use at 0 or at Orthanc's current last change. */
  async cursor(): Promise<number> {
    const stored = await readCursor(this.#deps.db);
    if (stored !== undefined) return stored;
    const start = this.#opts.startAt === 'latest' ? await lastChangeSeq(this.#deps.orthanc) : 0;
    return initCursor(this.#deps.db, start);
  }

  /** Polls and applies changes until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const done = await this.step(signal);
        // Back after an outage (Orthanc or PostgreSQL): look for what the outage left unaccounted for.
        if (failures > 0) this.#reconcileDue = true;
        failures = 0;
        if (done) await sleep(this.#opts.pollMs, signal);
      } catch (err) {
        failures += 1;
        const wait = Math.min(this.#opts.pollMs * 2 ** Math.min(failures, 10), this.#opts.maxBackoffMs);
        const level = err instanceof CursorMovedError ? 'warn' : 'error';
        this.#log[level]({ err, failures, retryInMs: wait }, 'change feed: step failed, retrying');
        await sleep(wait, signal);
      }
    }
  }

  /** One page: returns whether Orthanc had nothing more (so the caller may wait). */
  async step(signal: AbortSignal = new AbortController().signal): Promise<boolean> {
    let cursor = await this.cursor();
    const page = await getChanges(this.#deps.orthanc, cursor, this.#opts.batchSize);
    const plan = planPage(cursor, page);
    if (plan.reset) {
      this.#log.warn({ cursor, orthancLast: page.Last }, 'change feed: Orthanc change log restarted, re-reading it');
      await resetCursor(this.#deps.db, 0);
      return false;
    }
    for (const action of plan.actions) {
      if (signal.aborted) return true;
      await this.apply(cursor, action);
      cursor = action.seq;
    }
    const periodic = Date.now() - this.#lastSweep >= this.#opts.deletionSweepMs;
    if (periodic && !signal.aborted) {
      this.#lastSweep = Date.now();
      const swept = await sweepDeletions(this.#deps);
      if (swept.unlinked + swept.queueItemsClosed > 0) this.#log.info({ swept }, 'change feed: deletions applied');
    }
    if ((periodic || this.#reconcileDue) && page.Done && !signal.aborted) {
      const compareCounts = this.#reconcileDue;
      this.#reconcileDue = false;
      try {
        const swept = await sweepOrphans(this.#deps, {
          compareCounts,
          limit: ORPHANS_PER_SWEEP,
          notBefore: this.#opts.startAt === 'latest' ? this.#startedAt : undefined,
        });
        if (Object.keys(swept.indexed).length) {
          this.#log.warn({ swept }, 'change feed: indexed studies no change had announced (orphans)');
        }
      } catch (err) {
        this.#reconcileDue ||= compareCounts;
        throw err;
      }
    }
    return page.Done;
  }

  async apply(expected: number, action: ChangeAction): Promise<void> {
    if (action.kind === 'index-study') {
      const decision = await indexStudyChange(this.#deps, expected, action.seq, action.orthancStudyId);
      this.#log.info({ seq: action.seq, orthancStudyId: action.orthancStudyId, decision }, 'change feed: study');
      return;
    }
    if (action.kind === 'study-deleted') {
      // Only logged by newer Orthancs; the sweep does the work, with its existence check.
      this.#lastSweep = 0;
    }
    await this.#deps.db.transaction(async (tx) => {
      await claimCursor(tx, expected);
      await advanceCursor(tx, action.seq);
    });
  }
}

/** How far the feed is behind (for status output): stored cursor vs Orthanc's last change. */
export async function feedStatus(deps: IndexDeps): Promise<{ cursor: number | null; orthancLast: number }> {
  const [cursor, last] = await Promise.all([readCursor(deps.db), lastChangeSeq(deps.orthanc)]);
  return { cursor: cursor ?? null, orthancLast: last };
}

/** Counts of queue items per status. */
export async function queueCounts(deps: IndexDeps): Promise<Record<string, number>> {
  const rows = (await deps.db.any(sql.unsafe`
    SELECT status, count(*)::int AS n FROM dicom_unmatched GROUP BY status`)) as readonly {
    status: string;
    n: number;
  }[];
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}
