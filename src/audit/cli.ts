/**
 * `bin/ehr audit verify | export [--since ISO] [--until ISO] | prune [--before ISO]`
 *
 * - verify: recomputes the hash chain; prints "ok, N events" (exit 0) or the first broken link (exit 1).
 * - export: NDJSON (one AuditEvent per line, chain order) on stdout for a SIEM; `--since` inclusive, `--until`
 *   exclusive; each a FHIR date (YYYY, YYYY-MM-DD or an instant).
 * - prune: removes events recorded before `--before` (default: now minus EHR_AUDIT_RETENTION_DAYS) behind a hashed
 *   checkpoint, so that the rest still verifies.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../config/spec.ts';
import { createDatabasePool } from '../db/pool.ts';
import { describeBreak } from './chain.ts';
import { dateRange } from './search.ts';
import { type AuditDb, exportEvents, pruneBefore, type VerifyResult, verifyChain } from './store.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A wrong `bin/ehr audit` command line. */
export class AuditUsageError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_USAGE';
  override name = 'AuditUsageError';
}

export const AUDIT_USAGE = `usage: bin/ehr audit verify
       bin/ehr audit export [--since DATE] [--until DATE]   (NDJSON on stdout)
       bin/ehr audit prune [--before DATE]                 (default: now - EHR_AUDIT_RETENTION_DAYS)
`;

/** The start of a FHIR date (so `--until 2025-02-01` excludes that day). */
function date(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  try {
    return dateRange(value).start;
  } catch {
    throw new AuditUsageError(`--${name}: not a date: ${value}`);
  }
}

/** The text `verify` prints for a result. */
export function verifyReport(r: VerifyResult): string {
  if (r.ok) return `ok, ${r.events} events (last #${r.lastSeq}, hash ${r.lastHash})`;
  const b = r.break;
  if (b.problem === 'head-mismatch') {
    return `broken: the chain head names event #${b.headSeq} but the last stored event is #${b.lastSeq} (events were removed)`;
  }
  if (b.problem === 'checkpoint-mismatch') return `broken: prune checkpoint ${b.checkpointId} was changed`;
  return `broken: ${describeBreak(b)}`;
}

export interface AuditIo {
  out: (text: string) => void | Promise<void>;
  err: (text: string) => void;
}

/** Runs an audit subcommand against `db`; returns the exit code. */
export async function runAuditCommand(db: AuditDb, config: Config, args: string[], io: AuditIo): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: { since: { type: 'string' }, until: { type: 'string' }, before: { type: 'string' } },
    strict: true,
  });
  switch (sub) {
    case 'verify': {
      const r = await verifyChain(db);
      const line = verifyReport(r);
      if (r.ok) await io.out(`${line}\n`);
      else io.err(`${line}\n`);
      return r.ok ? 0 : 1;
    }
    case 'export': {
      const range = { since: date(values.since, 'since'), until: date(values.until, 'until') };
      const n = await exportEvents(db, range, (e) => io.out(`${JSON.stringify(e)}\n`));
      io.err(`exported ${n} events\n`);
      return 0;
    }
    case 'prune': {
      let before = date(values.before, 'before');
      if (!before) {
        if (config.auditRetentionDays === 0) {
          io.err('retention is 0 (keep forever): give --before to prune explicitly\n');
          return 0;
        }
        before = new Date(Date.now() - config.auditRetentionDays * 86_400_000);
      }
      const r = await pruneBefore(db, before);
      await io.out(`pruned ${r.pruned} events recorded before ${before.toISOString()} (through #${r.throughSeq})\n`);
      return 0;
    }
    default:
      throw new AuditUsageError(AUDIT_USAGE);
  }
}

/** `bin/ehr audit ...` as the CLI dispatches it: usage errors print the usage and exit 64. */
export async function auditMain(config: Config, args: string[]): Promise<number> {
  try {
    return await auditCommand(config, args);
  } catch (err) {
    if (!(err instanceof AuditUsageError) && (err as { code?: string }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw err;
    process.stderr.write(`${(err as Error).message}\n`);
    return 64;
  }
}

/** `bin/ehr audit ...` with the configuration from the environment. */
export async function auditCommand(config: Config, args: string[]): Promise<number> {
  const pool = await createDatabasePool(config);
  try {
    return await runAuditCommand(pool, config, args, {
      out: (t) =>
        new Promise<void>((resolve) => {
          if (process.stdout.write(t)) resolve();
          else process.stdout.once('drain', resolve);
        }),
      err: (t) => process.stderr.write(t),
    });
  } finally {
    await pool.end();
  }
}
