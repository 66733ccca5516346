import { parseArgs } from 'node:util';
import { sql } from 'slonik';
import type { Config } from '../config/spec.ts';
import { createDatabasePool } from '../db/pool.ts';
import { OrthancClient } from '../orthanc/client.ts';
import { changeFeedAudit } from './audit.ts';
import { feedStatus, queueCounts } from './consumer.ts';
import { ehrLinker } from './ehr-linker.ts';
import type { IndexDeps } from './index-study.ts';
import { listUnmatchedIn, NEEDS_ATTENTION, type UnmatchedItem } from './queue.ts';
import { QUEUE_STATUSES, type QueueStatus } from './queue-state.ts';
import { type Actor, linkUnmatched, rejectUnmatched, rollbackUnmatched } from './resolve.ts';
import { QUEUE_ROLES } from './routes.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

export const UNMATCHED_USAGE = `usage: bin/ehr unmatched <command>

  list [--status pending|relinking|linked|rejected|deleted] [--json]
                                   studies in the reconciliation queue (default: pending and relinking), and the
                                   feed's position; --json lists the same items
  rollback <id> --user <username>
                                   undo a re-link that failed half-way: restore the study in Orthanc as it was
                                   queued and put the item back to pending
  link <id> --patient <Patient/x> --order <ServiceRequest/y> --user <username>
                                   correct PatientID/AccessionNumber in Orthanc and link the study to the order
  reject <id> --reason <text> --user <username>
                                   keep the study in Orthanc, mark the item rejected

  --user names an active EHR user with the admin or radiologist role (recorded in the audit trail).
`;

/** A CLI usage error (exit code 64). */
export class UsageError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CHANGE_FEED_USAGE';
  override name = 'UsageError';
}

async function operator(deps: IndexDeps, username: string | undefined): Promise<Actor> {
  if (!username) throw new UsageError('--user <username> is required');
  const row = (await deps.db.maybeOne(sql.unsafe`
    SELECT username, roles FROM users WHERE username = ${username} AND active`)) as {
    username: string;
    roles: string[];
  } | null;
  if (!row?.roles.some((r) => (QUEUE_ROLES as readonly string[]).includes(r))) {
    throw new UsageError(`${username} is not an active admin or radiologist`);
  }
  return { who: `cli:${row.username}`, roles: row.roles };
}

function line(i: UnmatchedItem): string {
  const who = [i.patientId ?? '-', i.accessionNumber ?? '-', i.patientName ?? ''].join(' | ');
  const base = `${i.id}  ${i.status.padEnd(9)} ${i.reason.padEnd(22)} ${i.source.padEnd(5)} ${i.studyInstanceUid}  ${who}`;
  const target = i.status === 'relinking' && i.target ? `\n    re-link to ${i.target.patient} ${i.target.order}` : '';
  const error = i.lastError ? `\n    last error: ${i.lastError} (link again, or rollback)` : '';
  return `${base}${target}${i.status === 'relinking' ? error : ''}`;
}

/** Runs `bin/ehr unmatched ...`; returns the exit code. */
export async function unmatchedCommand(argv: string[], config: Config, out = console.log): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      status: { type: 'string' },
      json: { type: 'boolean' },
      patient: { type: 'string' },
      order: { type: 'string' },
      reason: { type: 'string' },
      user: { type: 'string' },
    },
  });
  if (sub !== 'list' && sub !== 'link' && sub !== 'reject' && sub !== 'rollback') throw new UsageError(UNMATCHED_USAGE);
  const db = await createDatabasePool(config);
  const orthanc = new OrthancClient({
    url: config.orthancUrl,
    username: config.orthancUsername,
    password: config.orthancPassword,
    timeoutMs: config.upstreamTimeoutMs,
  });
  const deps: IndexDeps = {
    db,
    orthanc,
    linker: ehrLinker(config, orthanc),
    audit: changeFeedAudit(config.publicBaseUrl),
  };
  try {
    if (sub === 'list') {
      const status = values.status as QueueStatus | undefined;
      if (status !== undefined && !QUEUE_STATUSES.includes(status))
        throw new UsageError(`--status must be one of ${QUEUE_STATUSES.join(', ')}`);
      // Text and JSON list the same items: by default every item that needs someone (pending or relinking).
      const items = await listUnmatchedIn(db, status ? [status] : NEEDS_ATTENTION, 1000);
      if (values.json) {
        out(JSON.stringify(items, null, 2));
        return 0;
      }
      const feed = await feedStatus(deps).catch(() => undefined);
      if (feed) out(`change feed: cursor ${feed.cursor ?? 'not started'}, Orthanc at ${feed.orthancLast}`);
      out(`queue: ${JSON.stringify(await queueCounts(deps))}`);
      for (const i of items) out(line(i));
      return 0;
    }
    const id = positionals[0];
    if (!id) throw new UsageError(UNMATCHED_USAGE);
    const actor = await operator(deps, values.user);
    if (sub === 'link') {
      if (!values.patient || !values.order) throw new UsageError('--patient and --order are required');
      const item = await linkUnmatched(deps, id, { patient: values.patient, order: values.order }, actor);
      out(`linked: ${line(item)} → Orthanc study ${item.linkedOrthancStudyId}`);
      return 0;
    }
    if (sub === 'rollback') {
      const item = await rollbackUnmatched(deps, id, actor);
      out(`rolled back: ${line(item)}`);
      return 0;
    }
    if (!values.reason) throw new UsageError('--reason is required');
    const item = await rejectUnmatched(deps, id, values.reason, actor);
    out(`rejected: ${line(item)}`);
    return 0;
  } finally {
    await db.end();
  }
}

/** Entry point for src/cli/main.ts: usage errors print the message and exit 64. */
export async function runUnmatched(argv: string[], config: () => Config): Promise<number> {
  try {
    return await unmatchedCommand(argv, config());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message.endsWith('\n') ? err.message : `ehr: ${err.message}\n`}`);
    return 64;
  }
}
