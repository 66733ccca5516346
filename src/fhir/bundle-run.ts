/**
 * Runs batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction) through the caller's
 * repository, so every entry gets the same access policy, validation and references checks as the single
 * interaction. A transaction runs in one database transaction (each write in a savepoint of it): any failing entry
 * rolls everything back and the whole request fails with that entry's status. A batch runs each entry in its own
 * transaction and reports each outcome in the response. Every entry is audited on its own (BALP: one AuditEvent
 * per interaction) through {@link EntryAuditor}, inside the entry's transaction for writes.
 */
import type { Bundle, BundleEntry, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { CommonQueryMethods, DatabaseTransactionConnection } from 'slonik';
import {
  type PlannedEntry,
  planBundle,
  referenceMap,
  rewriteReferences,
  transactionOrder,
  unresolvedUrns,
  entryError,
} from './bundle.ts';
import { FhirError, internalErrorOutcome, PreconditionFailedError } from './errors.ts';
import { searchBundle, historyBundle } from './format.ts';
import { parseIfMatch } from './http.ts';
import type { FhirType } from './registry.ts';
import type { FhirRepository, JsonPatch } from './repository.ts';
import type { WriteAudit } from './repository-core.ts';
import { everything } from './everything.ts';
import type { EntryAudit, EntryAuditor, EntryInteraction } from './entry-audit.ts';

export interface BundleOptions {
  strict: boolean;
  /** `Prefer: return=minimal`: no resources in the response entries. */
  minimal: boolean;
  audit?: EntryAuditor | undefined;
}

interface EntryResult {
  status: number;
  resource?: Resource;
  location?: string;
  etag?: string;
  lastModified?: string;
  audit: Omit<EntryAudit, 'method' | 'url' | 'status' | 'type'>;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
};
const statusLine = (s: number) => `${s} ${STATUS_TEXT[s] ?? ''}`.trim();

function interactionOf(e: PlannedEntry): EntryInteraction {
  const t = e.target;
  if (e.method === 'POST') return t.kind === 'search' ? 'search-type' : 'create';
  if (e.method === 'PUT') return 'update';
  if (e.method === 'PATCH') return 'patch';
  if (e.method === 'DELETE') return 'delete';
  switch (t.kind) {
    case 'instance':
      return 'read';
    case 'vread':
      return 'vread';
    case 'history':
      return t.id === undefined ? 'history-type' : 'history-instance';
    case 'everything':
      return 'operation';
    default:
      return 'search-type';
  }
}

function written(stored: { resource: Resource; versionId: number; lastUpdated: string }, status: number) {
  const { resource, versionId, lastUpdated } = stored;
  return {
    status,
    resource,
    location: `${resource.resourceType}/${resource.id}/_history/${versionId}`,
    etag: `W/"${versionId}"`,
    lastModified: lastUpdated,
  };
}

/** Runs one entry on `repo`; `matched` is the existing id a conditional create found. */
async function runEntry(
  repo: FhirRepository,
  e: PlannedEntry,
  opts: BundleOptions,
  matched: string | undefined,
  wrote: () => WriteAudit | undefined,
): Promise<EntryResult> {
  const t = e.target;
  const queryText = (q: Record<string, string[]>) =>
    new URLSearchParams(Object.entries(q).flatMap(([k, vs]) => vs.map((v): [string, string] => [k, v]))).toString();
  const writeAudit = (id?: string) => {
    const w = wrote();
    return {
      ...(id ? { id } : {}),
      ...(w ? { id: w.id, versionId: String(w.versionId), patientId: w.patientId } : {}),
    };
  };
  if (e.method === 'POST' && t.kind === 'type' && e.resource) {
    if (matched) {
      const found = await repo.read(t.type, matched);
      return { ...written(found, 200), audit: { interaction: 'create', id: matched, body: found.resource } };
    }
    if (e.ifNoneExist !== undefined && !e.newId) {
      const r = await repo.create(t.type, e.resource, e.ifNoneExist);
      return { ...written(r, r.created ? 201 : 200), audit: { interaction: 'create', ...writeAudit() } };
    }
    const r = await repo.createWithId(t.type, e.newId ?? '', e.resource);
    return { ...written(r, 201), audit: { interaction: 'create', ...writeAudit() } };
  }
  if (
    (e.method === 'POST' && t.kind === 'search') ||
    ((e.method === 'GET' || e.method === 'HEAD') && t.kind === 'type')
  ) {
    const { plan, page } = await repo.search(t.type, t.query, opts.strict);
    const body = searchBundle(repo.fhirBase, plan, page);
    return { status: 200, resource: body, audit: { interaction: 'search-type', query: queryText(t.query), body } };
  }
  if (t.kind === 'instance') {
    if (e.method === 'PUT' && e.resource) {
      const ifMatch = parseIfMatch(e.ifMatch);
      const r = await repo.update(t.type, t.id, e.resource, ifMatch === undefined ? {} : { ifMatch });
      return { ...written(r, r.created ? 201 : 200), audit: { interaction: 'update', ...writeAudit(t.id) } };
    }
    if (e.method === 'PATCH' && e.patch) {
      const r = await repo.patch(t.type, t.id, e.patch as JsonPatch, parseIfMatch(e.ifMatch));
      return { ...written(r, 200), audit: { interaction: 'patch', ...writeAudit(t.id) } };
    }
    if (e.method === 'DELETE') {
      const r = await repo.delete(t.type, t.id);
      return {
        status: 204,
        etag: `W/"${r.versionId}"`,
        lastModified: r.lastUpdated,
        audit: { interaction: 'delete', ...writeAudit(t.id) },
      };
    }
    const r = await repo.read(t.type, t.id);
    return {
      status: 200,
      resource: r.resource,
      etag: `W/"${r.versionId}"`,
      lastModified: r.lastUpdated,
      audit: { interaction: 'read', id: t.id, body: r.resource },
    };
  }
  if (t.kind === 'vread') {
    const r = await repo.vread(t.type, t.id, t.vid);
    return {
      status: 200,
      resource: r.resource,
      etag: `W/"${r.versionId}"`,
      lastModified: r.lastUpdated,
      audit: { interaction: 'vread', id: t.id, versionId: t.vid, body: r.resource },
    };
  }
  if (t.kind === 'history') {
    const result = await repo.history(t.type, t.id, {});
    const path = t.id === undefined ? `${t.type}/_history` : `${t.type}/${t.id}/_history`;
    const body = historyBundle(repo.fhirBase, path, [], result);
    return {
      status: 200,
      resource: body,
      audit: { interaction: t.id === undefined ? 'history-type' : 'history-instance', ...(t.id ? { id: t.id } : {}) },
    };
  }
  if (t.kind === 'everything') {
    const body = await everything(repo, t.id, t.query);
    return { status: 200, resource: body, audit: { interaction: 'operation', id: t.id, body } };
  }
  throw entryError(e.index, `${e.method} ${e.url} is not supported in a Bundle`);
}

function responseEntry(e: PlannedEntry, r: EntryResult, opts: BundleOptions, fhirBase: string): BundleEntry {
  const isWrite = e.method === 'PUT' || e.method === 'PATCH' || (e.method === 'POST' && e.target.kind === 'type');
  const withResource = r.resource !== undefined && e.method !== 'HEAD' && !(opts.minimal && isWrite);
  return {
    ...(r.location ? { fullUrl: `${fhirBase}/${r.location.split('/_history')[0]}` } : {}),
    ...(withResource ? { resource: r.resource } : {}),
    response: {
      status: statusLine(r.status),
      ...(r.location ? { location: r.location } : {}),
      ...(r.etag ? { etag: r.etag } : {}),
      ...(r.lastModified ? { lastModified: r.lastModified } : {}),
    },
  } as BundleEntry;
}

function failureEntry(err: unknown, requestId: string): { status: number; outcome: OperationOutcome } {
  if (err instanceof FhirError) return { status: err.statusCode, outcome: err.outcome() };
  return { status: 500, outcome: internalErrorOutcome(requestId) };
}

/** The failing entry's index in front of the message, so that the client knows which entry broke. */
function prefixed(err: FhirError, index: number): FhirError {
  const first = err.issues[0];
  if (first && !first.diagnostics?.startsWith('Bundle.entry[')) {
    first.diagnostics = `Bundle.entry[${index}]: ${first.diagnostics ?? err.message}`;
    first.expression = [`Bundle.entry[${index}]`, ...(first.expression ?? [])];
  }
  return err;
}

/**
 * Runs a batch or transaction Bundle: `pool` is the connection transactions are opened on (the request's
 * repository connection). Returns the batch-response / transaction-response Bundle; a failed transaction throws the
 * failing entry's error (nothing was written).
 */
export async function runBundle(
  repo: FhirRepository,
  body: unknown,
  opts: BundleOptions & { requestId: string },
): Promise<{ bundle: Bundle; wroteTypes: Set<FhirType> }> {
  const { kind, entries } = planBundle(body, repo.fhirBase);
  const responses: BundleEntry[] = new Array(entries.length);
  const wroteTypes = new Set<FhirType>();
  const audit = async (conn: CommonQueryMethods, e: PlannedEntry, status: number, a: EntryResult['audit'] | null) => {
    if (!opts.audit) return;
    const fallback = { interaction: interactionOf(e) } as EntryResult['audit'];
    const t = e.target;
    const id = 'id' in t ? t.id : undefined;
    await opts.audit(conn, {
      method: e.method,
      url: e.url,
      type: t.type,
      status,
      ...(id ? { id } : {}),
      ...(a ?? fallback),
    });
  };
  const bind = (conn: DatabaseTransactionConnection) => {
    const r = repo.withConnection(conn);
    let last: WriteAudit | undefined;
    r.onWrite = async (_tx, w) => {
      last = w;
    };
    return { r, wrote: () => last };
  };

  if (kind === 'batch') {
    for (const e of entries) {
      // A batch's conditional create is the single interaction's (If-None-Exist), with a server-assigned id.
      if (e.ifNoneExist !== undefined) delete e.newId;
      try {
        await repo.conn.transaction(async (tx) => {
          const { r, wrote } = bind(tx);
          const result = await runEntry(r, e, opts, undefined, wrote);
          if (e.method !== 'GET' && e.method !== 'HEAD' && e.method !== 'POST') wroteTypes.add(e.target.type);
          if (e.method === 'POST' && e.target.kind === 'type') wroteTypes.add(e.target.type);
          await audit(tx, e, result.status, result.audit);
          responses[e.index] = responseEntry(e, result, opts, repo.fhirBase);
        });
      } catch (err) {
        const f = failureEntry(err, opts.requestId);
        await audit(repo.conn, e, f.status, null);
        responses[e.index] = { response: { status: statusLine(f.status), outcome: f.outcome } };
      }
    }
    return { bundle: responseBundle('batch-response', responses), wroteTypes };
  }

  // Transaction: conditional creates are looked up first, then every fullUrl maps to its final local reference.
  const matched = new Map<number, string>();
  for (const e of entries) {
    if (e.method !== 'POST' || e.target.kind !== 'type' || e.ifNoneExist === undefined) continue;
    const query: Record<string, string[]> = {};
    for (const [k, v] of new URLSearchParams(e.ifNoneExist)) query[k] = [...(query[k] ?? []), v];
    const found = await repo.search(e.target.type, { ...query, _count: ['2'] }, true).catch((err: unknown) => {
      throw err instanceof FhirError ? prefixed(err, e.index) : err;
    });
    if (found.page.matches.length > 1) {
      throw prefixed(new PreconditionFailedError('ifNoneExist matches several resources', 'multiple-matches'), e.index);
    }
    const id = found.page.matches[0]?.id;
    if (id) matched.set(e.index, id);
  }
  const map = referenceMap(entries, matched);
  for (const e of entries) {
    if (!e.resource) continue;
    rewriteReferences(e.resource, map);
    const left = unresolvedUrns(e.resource);
    if (left.length) throw entryError(e.index, `reference ${left[0]} names no entry of the transaction`);
  }
  let failed: { e: PlannedEntry; err: unknown } | undefined;
  try {
    await repo.conn.transaction(async (tx) => {
      const { r, wrote } = bind(tx);
      for (const e of transactionOrder(entries)) {
        let result: EntryResult;
        try {
          result = await runEntry(r, e, opts, matched.get(e.index), wrote);
        } catch (err) {
          failed = { e, err };
          throw err;
        }
        if (e.method !== 'GET' && e.method !== 'HEAD') wroteTypes.add(e.target.type);
        await audit(tx, e, result.status, result.audit);
        responses[e.index] = responseEntry(e, result, opts, repo.fhirBase);
      }
    });
  } catch (err) {
    if (failed) {
      const f = failureEntry(failed.err, opts.requestId);
      await audit(repo.conn, failed.e, f.status, null);
      if (failed.err instanceof FhirError) throw prefixed(failed.err, failed.e.index);
    }
    throw err;
  }
  return { bundle: responseBundle('transaction-response', responses), wroteTypes };
}

function responseBundle(type: 'batch-response' | 'transaction-response', entry: BundleEntry[]): Bundle {
  return { resourceType: 'Bundle', type, meta: { lastUpdated: new Date().toISOString() }, entry };
}
