/**
 * The tamper-evident hash chain, pure. Each stored event's hash is
 *   SHA-256( prev_hash || JCS(content) )
 * where JCS is the JSON Canonicalization Scheme (RFC 8785, https://www.rfc-editor.org/rfc/rfc8785) and prev_hash is
 * the hex hash of the previous event (64 zeros for the first). Pruning writes a checkpoint that records the hash of
 * the last pruned event, so the chain stays verifiable from there; checkpoints are chained the same way.
 *
 * Also derives the search/index columns from an event's content, so that `verify` can prove those columns were not
 * edited apart from the JSON either.
 */
import { createHash } from 'node:crypto';
import type { AuditEvent } from '@medplum/fhirtypes';
import canonicalize from 'canonicalize';

export const GENESIS_HASH = '0'.repeat(64);

/** Returned by {@link sortedCopy} for a value it leaves to the reference implementation. */
const UNSUPPORTED = Symbol('unsupported');

/**
 * `value` with the members of every object in RFC 8785 order (sorted by UTF-16 code units, which is what
 * `Array.prototype.sort` compares), sharing every part that is already in order; {@link UNSUPPORTED} for anything but
 * plain objects (whose keys do not start with a digit), arrays, well-formed strings, finite numbers, booleans and null
 * (not a Date's toJSON, NaN, a bigint, a function...).
 */
function sortedCopy(value: unknown): unknown {
  if (value === null || typeof value === 'boolean') return value;
  // RFC 8785 §3.2.2.2: strings must be valid Unicode (the reference implementation refuses lone surrogates).
  if (typeof value === 'string') return value.isWellFormed() ? value : UNSUPPORTED;
  if (typeof value === 'number') return Number.isFinite(value) ? value : UNSUPPORTED;
  if (typeof value !== 'object') return UNSUPPORTED;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const x = value[i];
      if (x === undefined) return UNSUPPORTED;
      const y = sortedCopy(x);
      if (y === UNSUPPORTED) return UNSUPPORTED;
      if (y !== x) {
        out ??= value.slice();
        out[i] = y;
      }
    }
    return out ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return UNSUPPORTED;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  // A copy lists integer-like keys ("9", "10") first, in numeric order, whatever order they are added in.
  for (const k of keys) if (k.charCodeAt(0) >= 48 && k.charCodeAt(0) <= 57) return UNSUPPORTED;
  let inOrder = true;
  for (let i = 1; i < keys.length && inOrder; i++) inOrder = (keys[i - 1] as string) < (keys[i] as string);
  let out: Record<string, unknown> | undefined = inOrder ? undefined : {};
  if (!inOrder) keys.sort();
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) {
      if (out === undefined) out = Object.fromEntries(keys.slice(0, keys.indexOf(k)).map((j) => [j, o[j]]));
      continue; // JSON.stringify and RFC 8785 implementations both leave undefined members out
    }
    const y = sortedCopy(x);
    if (y === UNSUPPORTED) return UNSUPPORTED;
    if (out === undefined && y !== x) out = Object.fromEntries(keys.slice(0, keys.indexOf(k)).map((j) => [j, o[j]]));
    if (out !== undefined) out[k] = y;
  }
  return out ?? value;
}

/**
 * RFC 8785 canonical JSON of a JSON value. For plain JSON data this is `JSON.stringify` of a copy with sorted
 * members: RFC 8785 serializes strings and numbers exactly as ECMAScript's JSON.stringify does (RFC 8785 §3.2.2),
 * and it is 2-3 times cheaper than walking the value member by member; anything else goes to the reference
 * implementation (`canonicalize`). chain.test.ts checks both agree.
 */
export function canonicalJson(value: unknown): string {
  const sorted = sortedCopy(value);
  const out = sorted === UNSUPPORTED ? canonicalize(value) : JSON.stringify(sorted);
  if (out === undefined) throw new TypeError('value cannot be canonicalized');
  return out;
}

/** RFC 8785 canonical JSON by the reference implementation only (tests compare the fast path with it). */
export function referenceCanonicalJson(value: unknown): string | undefined {
  return canonicalize(value);
}

/** The chain link over an already canonical content: hex SHA-256 of the previous hash followed by it. */
export function linkHashOf(prevHash: string, canonicalContent: string): string {
  return createHash('sha256').update(prevHash, 'utf8').update(canonicalContent, 'utf8').digest('hex');
}

/** The chain link: hex SHA-256 over the previous hash followed by the canonical JSON of the content. */
export function linkHash(prevHash: string, content: unknown): string {
  return linkHashOf(prevHash, canonicalJson(content));
}

/** The index columns of a stored event, all derived from its content. */
export interface AuditIndex {
  readonly recorded: string;
  readonly patientIds: string[];
  /** Patients the request named without being shown them (entities marked {@link REQUESTED_DETAIL}): auditors only. */
  readonly requestedPatientIds: string[];
  /** agent.who references, identifier values and names (user, client id). */
  readonly agentWho: string[];
  /** entity.what references and identifier values (resources, study UIDs, accession numbers, jti). */
  readonly entityRefs: string[];
  /** `system|code` and `code` of the type. */
  readonly typeTokens: string[];
  /** `system|code` and `code` of each subtype. */
  readonly subtypeTokens: string[];
  readonly action: string | null;
  readonly outcome: string;
  readonly source: string;
  readonly requestId: string | null;
}

const tokens = (system: string | undefined, code: string | undefined): string[] =>
  code ? [...(system ? [`${system}|${code}`] : []), code] : [];

const uniq = (xs: (string | undefined)[]): string[] => [...new Set(xs.filter((x): x is string => !!x))].sort();

/**
 * The `entity.detail` that marks a patient the request named but was not shown (balp.ts `requestedPatientEntity`):
 * indexed apart from the patients whose data was accessed, so that it never puts an event into a patient's compartment.
 */
export const REQUESTED_DETAIL = { type: 'requested-patient', valueString: 'not shown to the caller' } as const;

const PATIENT_PREFIX = 'Patient/';
const isRequested = (e: NonNullable<AuditEvent['entity']>[number]): boolean =>
  (e.detail ?? []).some((d) => d.type === REQUESTED_DETAIL.type);

/** Derives the {@link AuditIndex} of an event. */
export function auditIndex(event: AuditEvent): AuditIndex {
  const entities = event.entity ?? [];
  const patientIds = entities
    .filter((e) => e.role?.code === '1' && e.what?.reference?.startsWith(PATIENT_PREFIX))
    .map((e) => e.what?.reference?.slice(PATIENT_PREFIX.length));
  const requestedPatientIds = entities
    .filter((e) => isRequested(e) && e.what?.reference?.startsWith(PATIENT_PREFIX))
    .map((e) => e.what?.reference?.slice(PATIENT_PREFIX.length));
  const agentWho = (event.agent ?? []).filter((a) => a.requestor || a.who?.identifier?.system !== 'urn:ietf:rfc:3986');
  return {
    recorded: event.recorded ?? '',
    patientIds: uniq(patientIds),
    requestedPatientIds: uniq(requestedPatientIds),
    agentWho: uniq(agentWho.flatMap((a) => [a.who?.reference, a.who?.identifier?.value, a.name])),
    entityRefs: uniq(
      entities
        .filter((e) => e.type?.code !== 'XrequestId')
        .flatMap((e) => [e.what?.reference, e.what?.identifier?.value]),
    ),
    typeTokens: tokens(event.type?.system, event.type?.code),
    subtypeTokens: uniq((event.subtype ?? []).flatMap((s) => tokens(s.system, s.code))),
    action: event.action ?? null,
    outcome: event.outcome ?? '',
    source: event.source?.observer?.identifier?.value ?? event.source?.site ?? '',
    requestId: entities.find((e) => e.type?.code === 'XrequestId')?.what?.identifier?.value ?? null,
  };
}

/** A stored row as verification sees it. */
export interface ChainRow {
  readonly seq: number;
  readonly id: string;
  /** What the chain hashed: the event, or what the event is rendered from (store.ts). */
  readonly content: unknown;
  readonly prevHash: string;
  readonly hash: string;
  /** The stored index columns, compared with those derived from content. */
  readonly index: AuditIndex;
}

/** Why a row breaks the chain. */
export type ChainBreak =
  | { readonly seq: number; readonly id: string; readonly problem: 'prev-hash-mismatch'; readonly expected: string }
  | { readonly seq: number; readonly id: string; readonly problem: 'hash-mismatch'; readonly expected: string }
  | { readonly seq: number; readonly id: string; readonly problem: 'id-mismatch' }
  | { readonly seq: number; readonly id: string; readonly problem: 'index-mismatch'; readonly column: string }
  | { readonly seq: number; readonly id: string; readonly problem: 'sequence-gap'; readonly expected: number };

/** Compares stored index columns with derived ones; the first differing column's name, or undefined. */
export function indexMismatch(stored: AuditIndex, derived: AuditIndex): string | undefined {
  for (const key of Object.keys(derived) as (keyof AuditIndex)[]) {
    const a = stored[key];
    const b = derived[key];
    const same =
      key === 'recorded'
        ? Date.parse(String(a)) === Date.parse(String(b))
        : Array.isArray(a) && Array.isArray(b)
          ? canonicalJson([...a].sort()) === canonicalJson([...b].sort())
          : a === b;
    if (!same) return key;
  }
  return undefined;
}

/**
 * Checks one row against the previous link: its prev_hash, its own hash (over the stored content), the id inside the
 * event, the index columns against those of the event, and that its seq follows the previous one. `render` gives the
 * event of a stored content (a compact row's is rendered from it: store.ts). Returns the break, or undefined when the
 * row is sound.
 */
export function checkLink(
  row: ChainRow,
  prev: { seq: number; hash: string },
  render: (content: unknown) => AuditEvent = (content) => content as AuditEvent,
): ChainBreak | undefined {
  const { seq, id } = row;
  if (seq !== prev.seq + 1) return { seq, id, problem: 'sequence-gap', expected: prev.seq + 1 };
  if (row.prevHash !== prev.hash) return { seq, id, problem: 'prev-hash-mismatch', expected: prev.hash };
  const expected = linkHash(row.prevHash, row.content);
  if (row.hash !== expected) return { seq, id, problem: 'hash-mismatch', expected };
  const event = render(row.content);
  if (event.id !== id) return { seq, id, problem: 'id-mismatch' };
  const column = indexMismatch(row.index, auditIndex(event));
  if (column) return { seq, id, problem: 'index-mismatch', column };
  return undefined;
}

/** A human-readable line for a break, as `bin/ehr audit verify` prints it. */
export function describeBreak(b: ChainBreak): string {
  const where = `event #${b.seq} (${b.id})`;
  switch (b.problem) {
    case 'sequence-gap':
      return `${where}: sequence gap, expected #${b.expected} (an event was removed)`;
    case 'prev-hash-mismatch':
      return `${where}: prev_hash does not match the previous event's hash (an event was removed or reordered)`;
    case 'hash-mismatch':
      return `${where}: content does not match its hash (the event was changed)`;
    case 'id-mismatch':
      return `${where}: the id inside the content differs from the row id`;
    case 'index-mismatch':
      return `${where}: column ${b.column} does not match the content`;
  }
}

/** A prune checkpoint's own content, hashed and chained to the previous checkpoint. */
export interface CheckpointContent {
  readonly prunedBefore: string;
  readonly throughSeq: number;
  readonly throughHash: string;
  readonly prunedCount: number;
  readonly created: string;
}
