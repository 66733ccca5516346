/**
 * The compact audit record, pure: what a request's AuditEvent is built from (its description, with the patients
 * merged, and the {@link AuditBase}: when, who, from where, outcome, request id, requested patients) plus the event
 * id. The IHE BALP builders (balp*.ts) are pure and deterministic, so {@link renderCompact} gives back exactly the
 * event that building it at record time would have given.
 *
 * The per-process audit writer stores reads as compact rows: the chain hashes the record's canonical JSON (RFC 8785,
 * a fraction of the BALP event's size), and the record travels to PostgreSQL instead of the event. Every reader
 * (FHIR read and search, export, verify) renders the BALP event from it ({@link renderItem}).
 *
 * `compact` is the format's version and is hashed with the record: rendering a stored record must give the same
 * event forever (verify checks the index columns against it), so a change to the BALP output of an existing kind
 * needs a new version, rendered by the old code for old rows.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { type AuditBase, type FhirRestInput, fhirRestEvent } from './balp.ts';
import {
  type ClientAssertionRefusedInput,
  clientAssertionRefusedEvent,
  type LoginInput,
  loginEvent,
  type TokenIssuedInput,
  tokenIssuedEvent,
} from './balp-auth.ts';
import {
  type DicomQueryInput,
  type DicomRetrieveInput,
  type DicomStoreInput,
  dicomQueryEvent,
  dicomRetrieveEvent,
  dicomStoreEvent,
} from './balp-dicom.ts';
import { apiRequestEvent, authRequestEvent } from './balp-generic.ts';
import type { SUBTYPE } from './codes.ts';

/** What an access was, as a handler (or the fallback) describes it. */
export type AuditDescription =
  | { readonly kind: 'fhir'; readonly input: FhirRestInput }
  | { readonly kind: 'dicom-query'; readonly input: DicomQueryInput }
  | { readonly kind: 'dicom-retrieve'; readonly input: DicomRetrieveInput }
  | { readonly kind: 'dicom-store'; readonly input: DicomStoreInput }
  | { readonly kind: 'login'; readonly input: LoginInput }
  | { readonly kind: 'token-issued'; readonly input: TokenIssuedInput }
  | { readonly kind: 'client-assertion-refused'; readonly input: ClientAssertionRefusedInput }
  | { readonly kind: 'api'; readonly input: { method: string; path: string } }
  | { readonly kind: 'auth'; readonly input: { path: string; subtype?: (typeof SUBTYPE)[keyof typeof SUBTYPE] } };

/** Builds the event of a description. */
export function buildAuditEvent(d: AuditDescription, base: AuditBase): AuditEvent {
  switch (d.kind) {
    case 'fhir':
      return fhirRestEvent(base, d.input);
    case 'dicom-query':
      return dicomQueryEvent(base, d.input);
    case 'dicom-retrieve':
      return dicomRetrieveEvent(base, d.input);
    case 'dicom-store':
      return dicomStoreEvent(base, d.input);
    case 'login':
      return loginEvent(base, d.input);
    case 'token-issued':
      return tokenIssuedEvent(base, d.input);
    case 'client-assertion-refused':
      return clientAssertionRefusedEvent(base, d.input);
    case 'api':
      return apiRequestEvent(base, d.input);
    case 'auth':
      return authRequestEvent(base, d.input);
  }
}

/** The version of the compact format this code writes and renders. */
export const COMPACT_VERSION = 1 as const;

/** One compact audit record: plain JSON data (no Sets, no undefined members), so that it is stored as hashed. */
export interface CompactAuditRecord {
  /** The format version (also what tells a compact record from a BALP event: it has no `resourceType`). */
  readonly compact: typeof COMPACT_VERSION;
  /** The event id (given by the writer when missing). */
  readonly id?: string;
  readonly description: AuditDescription;
  readonly base: AuditBase;
}

/** What the audit writer carries and the chain stores: a BALP event or a compact record. */
export type AuditItem = AuditEvent | CompactAuditRecord;

/** Whether a stored or queued item is a compact record (a BALP event always has `resourceType`). */
export function isCompact(item: unknown): item is CompactAuditRecord {
  const r = item as { compact?: unknown; resourceType?: unknown } | null;
  return typeof r === 'object' && r !== null && r.compact === COMPACT_VERSION && r.resourceType === undefined;
}

/**
 * `value` as plain JSON data: Sets and other iterables as arrays, objects as plain objects without undefined
 * members (what JSON.stringify would keep, but keeping the iterables the BALP builders accept), their members in
 * RFC 8785 order already, so that canonicalizing the record copies nothing (chain.ts `canonicalJson`).
 */
function plain(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((x) => (x === undefined ? null : plain(x)));
  if (typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function') {
    return [...(value as Iterable<unknown>)].map(plain);
  }
  const out: Record<string, unknown> = {};
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o).sort()) {
    const v = o[k];
    if (v !== undefined) out[k] = plain(v);
  }
  return out;
}

/** The compact record of an event built from `description` and `base` (as plain JSON data). */
export function compactRecord(description: AuditDescription, base: AuditBase, id?: string): CompactAuditRecord {
  // Members in RFC 8785 order (`id`, added last by the writer when missing, sorts last too).
  return {
    base: plain(base) as AuditBase,
    compact: COMPACT_VERSION,
    description: plain(description) as AuditDescription,
    ...(id ? { id } : {}),
  };
}

/** The BALP event a compact record stands for. */
export function renderCompact(record: CompactAuditRecord): AuditEvent {
  const event = buildAuditEvent(record.description, record.base);
  return record.id === undefined ? event : { ...event, id: record.id };
}

/** The BALP event of a stored or queued item. */
export function renderItem(item: AuditItem): AuditEvent {
  return isCompact(item) ? renderCompact(item) : item;
}
