/**
 * The audit store: append-only PostgreSQL table `audit_event` in one SHA-256 hash chain
 * (see chain.ts), with verification, NDJSON export and retention pruning behind checkpoints.
 *
 * {@link appendAuditEvent} / {@link appendAuditEvents} take either the pool (their own short transaction) or a caller's
 * transaction connection, so that a FHIR write and its AuditEvent commit or roll back together. Appends lock the single
 * chain-head row (SELECT ... FOR UPDATE) until their transaction ends: links are made strictly one after another, also
 * across processes. Reads are appended in batches by one writer per process (plugin.ts, group-commit.ts).
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import {
  type AuditIndex,
  auditIndex,
  type ChainBreak,
  type ChainRow,
  type CheckpointContent,
  canonicalJson,
  checkLink,
  GENESIS_HASH,
  linkHash,
  linkHashOf,
} from './chain.ts';
import { type AuditItem, type CompactAuditRecord, isCompact, renderCompact, renderItem } from './compact.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A pool or a transaction connection (both can open a (sub)transaction). */
export type AuditDb = Pick<CommonQueryMethods, 'transaction' | 'one' | 'oneFirst' | 'maybeOne' | 'any' | 'query'>;

/** The database inserted a different number of rows than the batch holds (never expected: a bug or a tampered function). */
export class AuditAppendError extends EhrError {
  override readonly code: ErrorCode = 'EHR_AUDIT_APPEND';
  override name = 'AuditAppendError';
  constructor(expected: number, got: number) {
    super(`audit append inserted ${got} rows for a batch of ${expected}`);
  }
}

export interface StoredAuditEvent {
  readonly seq: number;
  readonly id: string;
  readonly hash: string;
  /** The event (rendered from its compact record for a compact row). */
  readonly event: AuditEvent;
}

/** One row of audit_event as the append functions take it (`audit_append` reads them with `jsonb_to_recordset`). */
export interface EventRow {
  readonly seq: number;
  readonly id: string;
  readonly recorded: string;
  readonly patient_ids: readonly string[];
  readonly requested_patient_ids: readonly string[];
  readonly agent_who: readonly string[];
  readonly entity_refs: readonly string[];
  readonly type_tokens: readonly string[];
  readonly subtype_tokens: readonly string[];
  readonly action: string | null;
  readonly outcome: string;
  readonly source: string;
  readonly request_id: string | null;
  readonly content: AuditItem;
  readonly prev_hash: string;
  readonly hash: string;
}

/**
 * The row of one event: the index columns derived from the event, the content (the event, or its compact record
 * `content` when given) and its link.
 */
export function eventRow(
  seq: number,
  event: AuditEvent,
  prevHash: string,
  hash: string,
  content: AuditItem = event,
): EventRow {
  const ix = auditIndex(event);
  return {
    seq,
    id: event.id as string,
    recorded: ix.recorded,
    patient_ids: ix.patientIds,
    requested_patient_ids: ix.requestedPatientIds,
    agent_who: ix.agentWho,
    entity_refs: ix.entityRefs,
    type_tokens: ix.typeTokens,
    subtype_tokens: ix.subtypeTokens,
    action: ix.action,
    outcome: ix.outcome,
    source: ix.source,
    request_id: ix.requestId,
    content,
    prev_hash: prevHash,
    hash,
  };
}

/** A position in the chain: the last event's seq and hash (seq 0 and the genesis hash for an empty chain). */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/** A `\u0000` or lone-surrogate escape in `JSON.stringify` output (not an escaped backslash followed by its text). */
const UNSTORABLE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/g;

/**
 * The canonical JSON of an event, and the event as it will be stored. PostgreSQL's jsonb cannot hold U+0000, and
 * neither jsonb nor RFC 8785 accept a lone surrogate; an event carrying one (from some client-supplied text) gets
 * U+FFFD instead, before it is hashed, so that the stored content is exactly what was hashed.
 */
function canonicalContent(content: AuditEvent): { content: AuditEvent; canonical: string } {
  let canonical: string | undefined;
  try {
    canonical = canonicalJson(content);
    if (!canonical.includes('\\u0000')) return { content, canonical };
  } catch {
    canonical = undefined; // a lone surrogate
  }
  const json = JSON.stringify(content);
  const fixed = json.replace(UNSTORABLE, '$1\\ufffd');
  if (canonical !== undefined && fixed === json) return { content, canonical };
  const replaced = JSON.parse(fixed) as AuditEvent;
  return { content: replaced, canonical: canonicalJson(replaced) };
}

/**
 * The canonical JSON of a compact record, or undefined when it holds a character jsonb cannot (U+0000, a lone
 * surrogate): such a record is stored as its BALP event instead, which {@link canonicalContent} makes storable.
 */
function compactCanonical(record: CompactAuditRecord): string | undefined {
  try {
    const canonical = canonicalJson(record);
    return canonical.includes('\\u0000') ? undefined : canonical;
  } catch {
    return undefined; // a lone surrogate
  }
}

/** One element of the batch JSON: the row's columns, with the content spliced in as its canonical JSON text. */
function rowJson(row: EventRow, canonical: string): string {
  const { content: _content, ...columns } = row;
  return `${JSON.stringify(columns).slice(0, -1)},"content":${canonical}}`;
}

/**
 * The items (given ids where missing) linked, in order, after `head`: their rows, what is stored, the new head, and
 * `json`, the rows as the one JSON parameter of `audit_insert_batch` / `audit_append`. Each item is serialized once
 * (its canonical JSON is hashed and sent as is). A compact record (compact.ts) is stored and hashed as such, its
 * index columns derived from the event it renders.
 */
export function linkAfter(
  head: ChainHead,
  items: readonly AuditItem[],
): { rows: EventRow[]; stored: StoredAuditEvent[]; head: ChainHead; json: string } {
  let seq = head.seq;
  let prevHash = head.hash;
  const stored: StoredAuditEvent[] = [];
  const parts: string[] = [];
  const rows = items.map((item) => {
    const withId = item.id ? item : { ...item, id: randomUUID() };
    const compact = isCompact(withId) ? compactCanonical(withId) : undefined;
    let content: AuditItem;
    let event: AuditEvent;
    let canonical: string;
    if (compact !== undefined) {
      content = withId;
      event = renderCompact(withId as CompactAuditRecord);
      canonical = compact;
    } else {
      ({ content: event, canonical } = canonicalContent(renderItem(withId)));
      content = event;
    }
    seq++;
    const hash = linkHashOf(prevHash, canonical);
    const row = eventRow(seq, event, prevHash, hash, content);
    parts.push(rowJson(row, canonical));
    stored.push({ seq, id: row.id, hash, event });
    prevHash = hash;
    return row;
  });
  return { rows, stored, head: { seq, hash: prevHash }, json: `[${parts.join(',')}]` };
}

/** Reads the chain head (locking it until the end of the transaction with `forUpdate`). */
export async function readChainHead(db: AuditDb, forUpdate = false): Promise<ChainHead> {
  const head = (await db.one(
    sql.unsafe`SELECT last_seq, last_hash FROM audit_chain_head WHERE singleton ${forUpdate ? sql.fragment`FOR UPDATE` : sql.fragment``}`,
  )) as { last_seq: number | bigint; last_hash: string };
  return { seq: Number(head.last_seq), hash: head.last_hash };
}

/**
 * Links `events` (each given an id if it has none), in order, as the next links of the chain: under the chain-head
 * lock, one multi-row INSERT and one chain-head UPDATE. Inside a caller's transaction the rows are part of that
 * transaction and the lock is held until it commits or rolls back; with the pool, all of them commit together in one
 * transaction of their own (one commit, one WAL flush) or none does. (The per-process read writer uses the one-statement
 * variant in chain-appender.ts.)
 */
export async function appendAuditEvents(db: AuditDb, events: readonly AuditItem[]): Promise<StoredAuditEvent[]> {
  if (events.length === 0) return [];
  const append = async (tx: AuditDb): Promise<StoredAuditEvent[]> => {
    const { rows, stored, head, json } = linkAfter(await readChainHead(tx, true), events);
    const inserted = await tx.oneFirst(sql.unsafe`SELECT audit_insert_batch(${json}::jsonb)`);
    if (inserted !== rows.length) throw new AuditAppendError(rows.length, Number(inserted));
    await tx.query(
      sql.unsafe`UPDATE audit_chain_head SET last_seq = ${head.seq}, last_hash = ${head.hash} WHERE singleton`,
    );
    return stored;
  };
  // Inside a caller's transaction: no savepoint, the rows belong to that transaction itself.
  return 'transactionDepth' in db ? append(db) : db.transaction(append);
}

/**
 * Appends `event` (given an id if it has none) as the next link of the chain. Inside a caller's transaction the rows
 * are part of that transaction and the chain-head lock is held until it commits or rolls back.
 */
export async function appendAuditEvent(db: AuditDb, event: AuditItem): Promise<StoredAuditEvent> {
  const [stored] = await appendAuditEvents(db, [event]);
  return stored as StoredAuditEvent;
}

/** Whether an event with this id is stored (committed, as this connection sees it). */
export async function auditEventExists(db: AuditDb, id: string): Promise<boolean> {
  return (await db.maybeOne(sql.unsafe`SELECT 1 FROM audit_event WHERE id = ${sql.uuid(id)}`)) !== null;
}

interface Row {
  seq: number | bigint;
  id: string;
  recorded: number | string;
  patient_ids: string[];
  requested_patient_ids: string[];
  agent_who: string[];
  entity_refs: string[];
  type_tokens: string[];
  subtype_tokens: string[];
  action: string | null;
  outcome: string;
  source: string;
  request_id: string | null;
  content: AuditItem;
  prev_hash: string;
  hash: string;
}

function toChainRow(r: Row): ChainRow {
  const index: AuditIndex = {
    recorded: new Date(r.recorded).toISOString(),
    patientIds: r.patient_ids,
    requestedPatientIds: r.requested_patient_ids,
    agentWho: r.agent_who,
    entityRefs: r.entity_refs,
    typeTokens: r.type_tokens,
    subtypeTokens: r.subtype_tokens,
    action: r.action,
    outcome: r.outcome,
    source: r.source,
    requestId: r.request_id,
  };
  return { seq: Number(r.seq), id: r.id, content: r.content, prevHash: r.prev_hash, hash: r.hash, index };
}

const PAGE = 1000;

export type VerifyResult =
  | { readonly ok: true; readonly events: number; readonly lastSeq: number; readonly lastHash: string }
  | { readonly ok: false; readonly events: number; readonly break: ChainBreak | HeadBreak | CheckpointBreak };

export interface HeadBreak {
  readonly problem: 'head-mismatch';
  readonly headSeq: number;
  readonly lastSeq: number;
}
export interface CheckpointBreak {
  readonly problem: 'checkpoint-mismatch';
  readonly checkpointId: number;
}

/**
 * Recomputes the whole chain: the checkpoints' own chain, then every event from the latest checkpoint (or from the
 * genesis hash), then that the chain head names the last event (so that removing the newest events shows too).
 */
export async function verifyChain(db: AuditDb): Promise<VerifyResult> {
  const checkpoints = (await db.any(
    sql.unsafe`SELECT id, content, prev_hash, hash FROM audit_checkpoint ORDER BY id`,
  )) as readonly { id: number | bigint; content: CheckpointContent; prev_hash: string; hash: string }[];
  let cpHash = GENESIS_HASH;
  let prev = { seq: 0, hash: GENESIS_HASH };
  for (const cp of checkpoints) {
    if (cp.prev_hash !== cpHash || linkHash(cp.prev_hash, cp.content) !== cp.hash) {
      return { ok: false, events: 0, break: { problem: 'checkpoint-mismatch', checkpointId: Number(cp.id) } };
    }
    cpHash = cp.hash;
    prev = { seq: cp.content.throughSeq, hash: cp.content.throughHash };
  }
  let events = 0;
  for (;;) {
    const rows = (await db.any(sql.unsafe`
      SELECT seq, id, recorded, patient_ids, requested_patient_ids, agent_who, entity_refs, type_tokens, subtype_tokens, action, outcome,
             source, request_id, content, prev_hash, hash
        FROM audit_event WHERE seq > ${prev.seq} ORDER BY seq LIMIT ${PAGE}`)) as readonly Row[];
    for (const row of rows.map(toChainRow)) {
      const broken = checkLink(row, prev, (content) => renderItem(content as AuditItem));
      if (broken) return { ok: false, events, break: broken };
      prev = { seq: row.seq, hash: row.hash };
      events++;
    }
    if (rows.length < PAGE) break;
  }
  const head = (await db.one(sql.unsafe`SELECT last_seq, last_hash FROM audit_chain_head WHERE singleton`)) as {
    last_seq: number | bigint;
    last_hash: string;
  };
  if (Number(head.last_seq) !== prev.seq || head.last_hash !== prev.hash) {
    return {
      ok: false,
      events,
      break: { problem: 'head-mismatch', headSeq: Number(head.last_seq), lastSeq: prev.seq },
    };
  }
  return { ok: true, events, lastSeq: prev.seq, lastHash: prev.hash };
}

/** Streams the events recorded in [since, until) in chain order to `write`, one JSON object per call. */
export async function exportEvents(
  db: AuditDb,
  range: { since?: Date | undefined; until?: Date | undefined },
  write: (event: AuditEvent) => void | Promise<void>,
): Promise<number> {
  let after = 0;
  let count = 0;
  const since = range.since ? sql.fragment`AND recorded >= ${sql.timestamp(range.since)}` : sql.fragment``;
  const until = range.until ? sql.fragment`AND recorded < ${sql.timestamp(range.until)}` : sql.fragment``;
  for (;;) {
    const rows = (await db.any(sql.unsafe`
      SELECT seq, content FROM audit_event WHERE seq > ${after} ${since} ${until} ORDER BY seq LIMIT ${PAGE}`)) as readonly {
      seq: number | bigint;
      content: AuditItem;
    }[];
    for (const r of rows) {
      await write(renderItem(r.content));
      count++;
      after = Number(r.seq);
    }
    if (rows.length < PAGE) return count;
  }
}

export interface PruneResult {
  readonly pruned: number;
  readonly throughSeq: number;
}

/**
 * Removes the oldest events recorded before `before` (a prefix of the chain: every event up to the last one recorded
 * before that instant) and records a checkpoint with the seq and hash of the last removed event, chained to the
 * previous checkpoint. The remaining chain then verifies from the checkpoint.
 */
export async function pruneBefore(db: AuditDb, before: Date, now = new Date()): Promise<PruneResult> {
  return db.transaction(async (tx) => {
    await tx.one(sql.unsafe`SELECT last_seq FROM audit_chain_head WHERE singleton FOR UPDATE`);
    const last = (await tx.maybeOne(sql.unsafe`
      SELECT seq, hash FROM audit_event
       WHERE seq = (SELECT max(seq) FROM audit_event WHERE recorded < ${sql.timestamp(before)})`)) as {
      seq: number | bigint;
      hash: string;
    } | null;
    if (!last) return { pruned: 0, throughSeq: 0 };
    const throughSeq = Number(last.seq);
    await tx.query(sql.unsafe`SELECT set_config('ehr.audit_prune', 'on', true)`);
    const deleted = await tx.query(sql.unsafe`DELETE FROM audit_event WHERE seq <= ${throughSeq}`);
    await tx.query(sql.unsafe`SELECT set_config('ehr.audit_prune', 'off', true)`);
    const prevCp = (await tx.maybeOne(sql.unsafe`SELECT hash FROM audit_checkpoint ORDER BY id DESC LIMIT 1`)) as {
      hash: string;
    } | null;
    const prevHash = prevCp?.hash ?? GENESIS_HASH;
    const content: CheckpointContent = {
      prunedBefore: before.toISOString(),
      throughSeq,
      throughHash: last.hash,
      prunedCount: deleted.rowCount,
      created: now.toISOString(),
    };
    const hash = linkHash(prevHash, content);
    await tx.query(sql.unsafe`
      INSERT INTO audit_checkpoint (content, prev_hash, hash)
      VALUES (${sql.jsonb(content as unknown as Record<string, unknown>)}, ${prevHash}, ${hash})`);
    return { pruned: deleted.rowCount, throughSeq };
  });
}
