/**
 * The audit plugin. Registered right after the access plugin, at the root, so its hooks cover every route of every
 * scope. It gives each request `req.audit` (an {@link AuditContext} that handlers fill, created on first use) and
 * guarantees that every request to a route whose rules declare an audit (src/http/route-rules.ts: every FHIR,
 * DICOMweb, /api and /auth route except the public ones that disclose nothing) leaves exactly one AuditEvent, allowed
 * or denied:
 *
 * - `onSend` (before any byte of the response is written): hands the event to this process's single audit writer and
 *   waits until it is committed. A streamed 2xx answer is not held up: its bytes flow while the event commits, except
 *   the last chunk, which is released only after the commit (and never, if it fails: hold-last.ts). The writer links the queued events in batches (group commit, group-commit.ts: up to
 *   `EHR_AUDIT_BATCH_MAX` events, or whatever queued within `EHR_AUDIT_BATCH_WAIT_MS`) in one auto-committed statement
 *   (chain-appender.ts: compare-and-set of the chain head plus one multi-row INSERT) and releases every waiting response
 *   when the batch has committed. If the batch fails, each of its responses is replaced by a 503 and the data never
 *   leaves: a read's event is durable before its response.
 * - Otherwise, a batch that PostgreSQL cannot take because it is unreachable is spilled to a durable local directory
 *   (`EHR_AUDIT_SPILL_DIR`, spill.ts) and shipped when it is back, so the response (often an error caused by the same
 *   outage) still has a durable event; only when that fails too is the response replaced by a 503.
 * - With `EHR_AUDIT_OUTBOX_DIR`, a batch is appended to a durable local outbox (written and fdatasync'd) instead, and
 *   shipped to PostgreSQL in the background (outbox.ts); the response still completes only after its event is durable.
 * - A handler that appended its event inside its own transaction (`req.audit.writeWithin(tx)`) is not written twice:
 *   `onSend` only checks that the event was committed, and records a fallback event if it was rolled back.
 * - after the response (the app's one `onResponse` hook, src/http/response-end.ts) and `onRequestAbort`: safety nets
 *   for replies that bypassed `onSend` (hijacked) or aborted requests.
 * - FHIR writes commit their events in their own transaction: the FHIR scope wires its repository with
 *   {@link auditFhirWrites}.
 */
import { renderError } from '../errors/render.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { pipeline, type Readable } from 'node:stream';
import fp from 'fastify-plugin';
import type { Config } from '../config/spec.ts';
import { AuditContext, fallbackDescription } from './context.ts';
import { isAuditedRoute } from '../http/route-rules.ts';
import { describeAuthRequest } from './auth-events.ts';
import {
  dicomAllowedPatients,
  dicomKeys,
  dicomNamedPatients,
  fhirNamedPatients,
  patientsInFhirJson,
  type StudyPatientsLookup,
} from './enrich.ts';
import { GroupCommit } from './group-commit.ts';
import { AuditUnavailableError, HoldLastChunk } from './hold-last.ts';
import { ChainAppender } from './chain-appender.ts';
import { AuditOutbox } from './outbox.ts';
import { timedAuditCommit, watchAuditQueues } from '../metrics/audit.ts';
import { AuditSpill, isDatabaseUnavailable } from './spill.ts';
import { TransferWindows, type TransferWindow } from './transfer-window.ts';
import { type AuditDb, appendAuditEvent, auditEventExists } from './store.ts';
import type { AuditItem } from './compact.ts';

/** The part of the per-request FHIR repository the audit uses (src/fhir/repository-core.ts `onWrite`). */
export interface FhirWriteHooked {
  onWrite?: (
    tx: AuditDb,
    w: {
      interaction: 'create' | 'update' | 'patch' | 'delete';
      type: string;
      id: string;
      versionId: number;
      patientId: string | null;
      status: number;
    },
  ) => Promise<void>;
  onEntry?: (conn: AuditDb, e: BundleEntryAccess) => Promise<void>;
}

/** One entry of a batch or transaction Bundle (src/fhir/bundle-run.ts `EntryAudit`). */
interface BundleEntryAccess {
  method: string;
  url: string;
  interaction:
    | 'read'
    | 'vread'
    | 'search-type'
    | 'history-instance'
    | 'history-type'
    | 'create'
    | 'update'
    | 'patch'
    | 'delete'
    | 'operation';
  type: string;
  id?: string | undefined;
  versionId?: string | undefined;
  query?: string | undefined;
  status: number;
  patientId?: string | null | undefined;
  body?: unknown;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This process's audit outbox, when `EHR_AUDIT_OUTBOX_DIR` is set (outbox.ts). */
    auditOutbox: AuditOutbox | null;
    /** Where events go when PostgreSQL cannot take them (spill.ts), unless `EHR_AUDIT_SPILL_DIR` is empty. */
    auditSpill: AuditSpill | null;
  }
  interface FastifyRequest {
    /** This request's audit context: handlers describe the access here. */
    audit: AuditContext;
  }
}

const kAudit = Symbol('ehr.audit');

/** The audit context of a request, created on first use (`req.audit` is this, lazily: no request hook creates it). */
export function auditOf(req: FastifyRequest, serverBaseUrl: string): AuditContext {
  const held = req as FastifyRequest & { [kAudit]?: AuditContext };
  let ctx = held[kAudit];
  if (!ctx) {
    const how = req.routeOptions.config.rules?.audit;
    ctx = new AuditContext({
      requestId: req.id,
      method: req.method,
      url: req.url,
      network: req.ip,
      serverBaseUrl,
      ...(typeof how === 'string' ? { how } : {}),
    });
    held[kAudit] = ctx;
  }
  return ctx;
}

/** Is this request audited? Its route's rules say (src/http/route-rules.ts); for no route, the scope's not-found rules. */
export function isAuditedRequest(req: FastifyRequest): boolean {
  return isAuditedRoute(req.routeOptions.config.rules);
}

/**
 * FHIR writes and Bundle entries: the per-request repository calls back inside its own transaction, so that a write and
 * its event commit together (called by the FHIR scope when it creates the request's repository).
 */
export function auditFhirWrites(req: FastifyRequest, repo: FhirWriteHooked, baseUrl: string): void {
  const ctx = auditOf(req, baseUrl);
  repo.onWrite = async (tx, w) => {
    ctx.agent = req.access?.agent;
    ctx.fhir({ interaction: w.interaction, resourceType: w.type, id: w.id, versionId: String(w.versionId) });
    ctx.addPatients(w.patientId ?? undefined);
    await ctx.writeWithin(tx, w.status);
  };
  // Batch/transaction entries: one event each (as if sent alone), in the entry's transaction for writes; the
  // request itself keeps its own event. All share the request id (the BALP transaction entity).
  repo.onEntry = async (conn, e) => {
    const entry = new AuditContext({
      requestId: req.id,
      method: e.method,
      url: `/fhir/${e.url.replace(/^\/+/, '')}`,
      network: req.ip,
      serverBaseUrl: baseUrl,
    });
    entry.agent = req.access?.agent;
    entry.fhir({
      interaction: e.interaction,
      resourceType: e.type,
      id: e.id,
      versionId: e.versionId,
      query: e.query,
    });
    if (e.status >= 200 && e.status < 300) {
      entry.addPatients(e.patientId ?? undefined);
      if (e.body) entry.addPatients(...patientsInFhirJson(JSON.stringify(e.body)));
    }
    await appendAuditEvent(conn, entry.build(e.status));
  };
}

/**
 * STOW-RS and the upload API: appends the store event inside the EHR transaction that links the studies (called by
 * the STOW pipeline, src/dicomweb/stow/store-instances.ts), with the studies, their orders and patients as entities.
 */
export async function auditStoreWithin(
  req: FastifyRequest,
  tx: AuditDb,
  linked: readonly {
    studyInstanceUid: string;
    patientId: string;
    orderId: string;
    accessionNumber?: string | undefined;
    instances: readonly { accessionNumber?: string | undefined }[];
  }[],
): Promise<void> {
  const ctx = req.audit;
  ctx.agent = req.access?.agent;
  const first = linked[0];
  ctx.describe({
    kind: 'dicom-store',
    input: {
      studies: linked.map((s) => ({ studyUid: s.studyInstanceUid })),
      patientIds: linked.map((s) => s.patientId),
      order: first
        ? {
            serviceRequestId: first.orderId,
            accessionNumber: first.accessionNumber ?? first.instances[0]?.accessionNumber,
          }
        : undefined,
    },
  });
  await ctx.writeWithin(tx, 200);
}

/** What the record closing a transfer window is built from: the opening request's audit context and its study. */
interface TransferSeed {
  readonly ctx: AuditContext;
  readonly studyUid: string;
}

/** Most transfer windows open at once (callers × studies); one more ends the oldest early. */
const MAX_OPEN_TRANSFERS = 10_000;

const isStream = (payload: unknown): payload is Readable =>
  typeof (payload as { pipe?: unknown } | null)?.pipe === 'function';

/**
 * The withheld answer, rendered like every other error of the route's API (its rules' dialect): an OperationOutcome,
 * a DICOM ErrorComment, or the facade's JSON error (also for the OAuth endpoints, whose RFC 6749 errors have no
 * "unavailable" value for a token response).
 */
function unavailableBody(req: FastifyRequest, reply: FastifyReply, cause: unknown): string {
  const dialect = req.routeOptions.config.rules?.dialect;
  const r = renderError(
    dialect === 'fhir' || dialect === 'dicom' ? dialect : 'json',
    new AuditUnavailableError(req.id, { cause }),
    req.id,
  );
  reply.removeHeader('content-length');
  reply.code(r.statusCode);
  for (const [name, value] of Object.entries(r.headers)) reply.header(name, value);
  if (r.headers['content-type'] === undefined) {
    reply.type(dialect === 'fhir' ? 'application/fhir+json' : 'application/json; charset=utf-8');
  }
  return typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
}

export const auditPlugin = fp(
  async (app: FastifyInstance, opts: { config: Config }) => {
    const baseUrl = opts.config.publicBaseUrl;
    app.decorateRequest('audit', {
      getter(this: FastifyRequest) {
        return auditOf(this, baseUrl);
      },
    });
    // One writer per process: the events of reads (and of every request whose handler did not append its own),
    // committed to PostgreSQL, or to the durable outbox when one is configured (outbox.ts).
    const appender = new ChainAppender(app.db);
    const outbox = opts.config.auditOutboxDir
      ? await AuditOutbox.open(app.db, appender, {
          dir: opts.config.auditOutboxDir,
          shipIntervalMs: opts.config.auditOutboxShipMs,
          log: app.log,
        })
      : null;
    app.decorate('auditOutbox', outbox);
    // Without an outbox, events that PostgreSQL cannot take spill to local disk (spill.ts) instead of being lost.
    // A spill directory that cannot be used (read-only, permissions) is logged, not fatal: the facade then answers
    // 503 when PostgreSQL cannot take an event, as without a spill.
    const spill =
      !outbox && opts.config.auditSpillDir
        ? await AuditSpill.open(app.db, appender, {
            root: opts.config.auditSpillDir,
            shipIntervalMs: opts.config.auditOutboxShipMs,
            log: app.log,
          }).catch((err: unknown) => {
            app.log.error(
              { err, dir: opts.config.auditSpillDir },
              'audit spill unavailable: events PostgreSQL cannot take fail their requests',
            );
            return null;
          })
        : null;
    app.decorate('auditSpill', spill);
    const toDatabase = async (events: readonly AuditItem[]): Promise<readonly unknown[]> => {
      if (!spill) return appender.append(events);
      const withIds = events.map((e): AuditItem => (e.id ? e : { ...e, id: randomUUID() }));
      // While spilled events wait for PostgreSQL, new ones queue behind them: the chain keeps the order of arrival.
      if (spill.pending > 0) return spill.append(withIds);
      try {
        return await appender.append(withIds);
      } catch (err) {
        // Only an unreachable database: events PostgreSQL refuses (an SQL error) still fail their responses.
        if (!isDatabaseUnavailable(err)) throw err;
        app.log.error(
          { err, events: withIds.length },
          'audit: PostgreSQL is unreachable; events spilled to local disk',
        );
        return spill.append(withIds);
      }
    };
    const writer = new GroupCommit<AuditItem, unknown>(
      timedAuditCommit<AuditItem, unknown>(outbox ? (events) => outbox.append(events) : toDatabase),
      // The outbox orders its writes itself and lets their fdatasyncs overlap; the chain appender needs one at a time.
      { maxBatch: opts.config.auditBatchMax, maxWaitMs: opts.config.auditBatchWaitMs, maxInFlight: outbox ? 4 : 1 },
    );
    watchAuditQueues(writer, outbox);
    // Study transfers (transfer-window.ts): a caller's successful retrievals of one study within the window share the
    // opening retrieval's durable event; the window's totals are written as a second event when it ends.
    const transfers =
      opts.config.auditTransferWindowS > 0
        ? new TransferWindows<TransferSeed>({
            windowMs: opts.config.auditTransferWindowS * 1000,
            maxOpen: MAX_OPEN_TRANSFERS,
            onClose: (w) => {
              const tally = w.tally();
              writer.submit(w.seed.ctx.recordTransfer(w.seed.studyUid, tally)).catch((err: unknown) => {
                app.log.error({ err, study: w.seed.studyUid, tally }, 'audit: a study transfer record was not stored');
              });
            },
          })
        : null;
    // Registered after the database plugin, so this runs before the pool closes: queued events are still written,
    // and the outbox ships what it holds.
    app.addHook('onClose', async () => {
      await transfers?.endAll();
      await writer.close();
      await outbox?.close();
      await spill?.close();
    });

    /** Stores the request's event unless already done; true when stored (or committed by the handler). */
    const record = async (req: FastifyRequest, status: number, payload?: unknown): Promise<void> => {
      const ctx = auditOf(req, baseUrl);
      if (ctx.written) return;
      ctx.written = true;
      ctx.agent = req.access?.agent;
      let fallbackId: string | undefined;
      if (ctx.appendedId) {
        // Unknown (the database is unreachable): the fallback event takes the handler's event id, so that whichever
        // of the two reaches the chain first is the only one (the spill skips ids already stored).
        const exists = await auditEventExists(app.db, ctx.appendedId).catch(() => undefined);
        if (exists === true) return;
        if (exists === undefined) fallbackId = ctx.appendedId;
      }
      if (!ctx.described) {
        const d = describeAuthRequest(req.method, req.url.split('?')[0] ?? '', status, req.body, payload);
        if (d) ctx.describe(d);
      }
      await addPatients(req, ctx, status, payload);
      // The compact record of the event (compact.ts): stored as such, rendered into the BALP event when read.
      const item = ctx.record(status);
      await writer.submit(fallbackId ? { ...item, id: fallbackId } : item);
    };

    /**
     * Patients of an allowed response the handler did not name, and, for any response, the patients the request
     * named (recorded for auditors only when the caller was not shown them): enrich.ts.
     */
    const addPatients = async (req: FastifyRequest, ctx: AuditContext, status: number, payload: unknown) => {
      const allowed = status >= 200 && status < 300;
      const d = ctx.described ?? fallbackDescription(req.method, req.url, ctx.facts.how);
      if (d.kind === 'fhir') {
        if (allowed && typeof payload === 'string') ctx.addPatients(...patientsInFhirJson(payload));
        ctx.addRequested(...(await fhirNamedPatients(app.db, req.url, !allowed)));
      }
      if (d.kind === 'dicom-query' || d.kind === 'dicom-retrieve') {
        // The DICOMweb plugin (registered after this one) decorates the app with its study index: its cache has
        // usually just answered the same study → patients question for the access decision.
        const index = (app as { studyIndex?: StudyPatientsLookup }).studyIndex;
        const named = await dicomNamedPatients(app.db, dicomKeys(d, req.url), index);
        if (allowed) ctx.addPatients(...dicomAllowedPatients(req.access ?? undefined, named));
        ctx.addRequested(...named);
      }
    };

    /**
     * A successful retrieval of one study (transfer-window.ts): joins the caller's open window of that study, or opens
     * one with this request's own event. Returns the window (whose `durable` the response waits for), or undefined
     * when the request is not part of a study transfer (it then gets its own event as any other).
     */
    const inTransfer = (
      req: FastifyRequest,
      reply: FastifyReply,
      status: number,
    ): TransferWindow<TransferSeed> | undefined => {
      if (!transfers || req.method !== 'GET' || status < 200 || status >= 300) return undefined;
      const ctx = auditOf(req, baseUrl);
      if (ctx.written || ctx.appendedId) return undefined;
      const t = ctx.transfer();
      if (!t) return undefined;
      const key = `${t.studyUid}\u0000${req.ip}\u0000${JSON.stringify(req.access?.agent ?? null)}`;
      let w = transfers.current(key);
      if (w) ctx.written = true;
      else w = transfers.open(key, { ctx, studyUid: t.studyUid }, record(req, status));
      w.add(t.facts, transfers.now());
      w.inFlight++;
      const window = w;
      const socket = req.raw.socket;
      const start = socket?.bytesWritten ?? 0;
      // 'close' follows 'finish', and also ends a response the client abandoned (no onResponse then).
      reply.raw.once('close', () => transfers.finished(window, (socket?.bytesWritten ?? start) - start));
      return w;
    };

    app.addHook('onSend', async (req, reply, payload) => {
      if (!isAuditedRequest(req)) return payload;
      const status = reply.statusCode;
      const streamed = isStream(payload) && status >= 200 && status < 300 && req.method !== 'HEAD';
      const transfer = inTransfer(req, reply, status);
      // Joined a study transfer whose opening event is durable: nothing to wait for.
      if (transfer?.committed) return payload;
      const durable = transfer?.durable ?? record(req, status, streamed ? undefined : payload);
      if (streamed) {
        // A streamed answer (WADO-RS, relayed QIDO-RS): its bytes flow while the event commits, but the last chunk
        // waits for the commit, so the response never completes before its event is durable (hold-last.ts). (Not for
        // HEAD: its response completes without the body.)
        durable.catch((err: unknown) => {
          req.log.error({ err }, 'audit event could not be stored: response cut short');
        });
        return pipeline(payload, new HoldLastChunk(durable, req.id), () => undefined);
      }
      try {
        await durable;
        return payload;
      } catch (err) {
        req.log.error({ err }, 'audit event could not be stored: response withheld');
        (payload as { destroy?: () => void } | null)?.destroy?.();
        return unavailableBody(req, reply, err);
      }
    });

    const lateRecord = async (req: FastifyRequest, status: number) => {
      if (!isAuditedRequest(req) || req.audit.written) return;
      try {
        await record(req, status);
        req.log.warn({ status }, 'audit event recorded after the response (reply bypassed onSend)');
      } catch (err) {
        req.log.error({ err }, 'audit event could not be stored');
      }
    };
    // Shares the app's one onResponse hook (src/http/response-end.ts).
    app.afterResponse(async (req, reply) => lateRecord(req, reply.statusCode));
    // 499: the client closed the connection before the answer (nginx's convention); outcome 4.
    app.addHook('onRequestAbort', async (req) => lateRecord(req, 499));
  },
  { name: 'audit', dependencies: ['database'] },
);
