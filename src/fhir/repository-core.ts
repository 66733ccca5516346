import { randomUUID } from 'node:crypto';
import { applyPatch } from '@medplum/core';
import type { DiagnosticReport, Resource, StructureDefinition } from '@medplum/fhirtypes';
import { type CommonQueryMethods, type FragmentSqlToken, sql, UniqueIntegrityConstraintViolationError } from 'slonik';
import type { Access, Interaction } from '../auth/access.ts';
import type { EntryAuditor } from './entry-audit.ts';
import {
  BadRequestError,
  ConflictError,
  FhirError,
  ForbiddenError,
  GoneError,
  NotFoundError,
  PreconditionFailedError,
  UnauthenticatedError,
  UnprocessableError,
} from './errors.ts';
import { compartmentOf, extractIndex } from './index-values.ts';
import { reflectReport } from './order-reported.ts';
import { type FhirType, RESOURCES } from './registry.ts';
import { type HistoryEntry, runHistory, runSearch, type SearchPage } from './repository-search.ts';
import {
  assignIdentifiers,
  type BridgeColumns,
  type IdentifierConfig,
  CONFLICTS,
  resolveReferences,
  writeHistory,
  writeIndex,
  writeRow,
} from './repository-write.ts';
import { decodeCursor } from './search/cursor.ts';
import { isTimestampText, type ParseOptions, parseSearch, type SearchPlan } from './search/parse.ts';
import { conditionSql } from './search/sql.ts';
import { assertIndexable, DEFAULT_MAX_INDEXED_LENGTH } from './index-limits.ts';
import { assertSafeContent, DEFAULT_MAX_DEPTH } from './json-body.ts';
import { validateProfile, validateStructure } from './validate.ts';

export type JsonPatch = Parameters<typeof applyPatch>[1];
export type InteractionKind = 'read' | 'vread' | 'history' | 'search' | 'create' | 'update' | 'patch' | 'delete';

/** What the audit issue needs to raise an AuditEvent: one call per interaction, success or failure. */
export interface InteractionEvent {
  interaction: InteractionKind;
  type: FhirType;
  id?: string;
  /** HTTP-style outcome status (200, 201, 404, 403 ...). */
  status: number;
  access: Access | null;
}

export interface RepositoryContext {
  config: IdentifierConfig & {
    publicBaseUrl: string;
    fhirDefaultCount: number;
    fhirMaxCount: number;
    fhirMaxJsonDepth?: number;
    fhirMaxIndexedValueLength?: number;
  };
  profiles: ReadonlyMap<string, StructureDefinition>;
  onInteraction?: (event: InteractionEvent) => void;
}

export interface StoredResource<T extends Resource = Resource> {
  resource: T;
  versionId: number;
  lastUpdated: string;
}
export interface WriteResult extends StoredResource {
  created: boolean;
}
export interface StudyLink {
  studyInstanceUid: string;
  orthancStudyId: string;
  numberOfImages: number;
  uploadedAt: Date;
  /** New ServiceRequest.status, if it changes (e.g. `completed`). */
  status?: string;
}

function meta(resource: Resource): StoredResource {
  return { resource, versionId: Number(resource.meta?.versionId), lastUpdated: resource.meta?.lastUpdated ?? '' };
}

/** A committed-together write, for the audit: called inside the write's own transaction. */
export interface WriteAudit {
  interaction: 'create' | 'update' | 'patch' | 'delete';
  type: FhirType;
  id: string;
  versionId: number;
  patientId: string | null;
  status: number;
}

/** CRUD, history and search with the access scope; see {@link FhirRepository} (repository.ts). */
export class FhirRepositoryCore {
  readonly conn: CommonQueryMethods;
  readonly access: Access | null;
  readonly ctx: RepositoryContext;
  readonly fhirBase: string;
  /** Audit hook: set per request by the audit plugin; runs inside each write's transaction (not copied by withConnection). */
  onWrite?: (tx: CommonQueryMethods, w: WriteAudit) => Promise<void>;
  /** Audit hook for the entries of a batch or transaction Bundle (one AuditEvent each); set by the audit plugin. */
  onEntry?: EntryAuditor;

  constructor(conn: CommonQueryMethods, access: Access | null | undefined, ctx: RepositoryContext) {
    this.conn = conn;
    this.access = access ?? null;
    this.ctx = ctx;
    this.fhirBase = `${ctx.config.publicBaseUrl}/fhir`;
  }

  protected policy(interaction: Interaction, type: FhirType): Access {
    if (!this.access) throw new UnauthenticatedError();
    if (!this.access.allows(interaction, type)) throw new ForbiddenError(`${interaction} on ${type} not allowed`);
    return this.access;
  }

  /** The patient constraint as SQL over alias `r` (or `h` for history). Types outside compartments: allows() only. */
  scope(interaction: Interaction, type: FhirType, alias: 'r' | 'h' = 'r'): FragmentSqlToken {
    if (!this.access) return sql.fragment`FALSE`;
    if (RESOURCES[type].compartment === null) return sql.fragment`TRUE`;
    const f = this.access.patientFilter(interaction, type);
    if (f.all) return sql.fragment`TRUE`;
    return sql.fragment`${sql.identifier([alias, 'patient_id'])} = ANY(${sql.array([...f.patientIds], 'text')})`;
  }

  protected inScope(interaction: Interaction, type: FhirType, patientId: string | null): boolean {
    if (!this.access) return false;
    if (RESOURCES[type].compartment === null) return true;
    const f = this.access.patientFilter(interaction, type);
    return f.all || (patientId !== null && f.patientIds.includes(patientId));
  }

  protected restrictions(type: FhirType): FragmentSqlToken[] {
    const list = this.access?.restrictions(type) ?? [];
    if (!list.length) return [];
    const query: Record<string, string[]> = {};
    for (const r of list) query[r.code] = [...(query[r.code] ?? []), r.value];
    const plan = parseSearch(type, query, { strict: true, defaultCount: 1, maxCount: 1 });
    return plan.conditions.map((c) => conditionSql(type, c, (t) => this.scope('search', t)));
  }

  protected async track<T>(interaction: InteractionKind, type: FhirType, id: string | undefined, fn: () => Promise<T>) {
    let status = 200;
    try {
      const out = await fn();
      if ((out as { created?: boolean } | undefined)?.created) status = 201;
      return out;
    } catch (err) {
      status = err instanceof FhirError ? err.statusCode : 500;
      throw err;
    } finally {
      this.ctx.onInteraction?.({ interaction, type, ...(id === undefined ? {} : { id }), status, access: this.access });
    }
  }

  read(type: FhirType, id: string): Promise<StoredResource> {
    return this.track('read', type, id, async () => {
      this.policy('read', type);
      const row = (await this.conn.maybeOne(sql.unsafe`
        SELECT r.deleted, r.content FROM ${sql.identifier([RESOURCES[type].table])} r
        WHERE r.id = ${id} AND ${sql.join([this.scope('read', type), ...this.restrictions(type)], sql.fragment` AND `)}`)) as {
        deleted: boolean;
        content: Resource;
      } | null;
      if (!row) throw new NotFoundError(`${type}/${id} not found`);
      if (row.deleted) throw new GoneError(`${type}/${id} was deleted`);
      return meta(row.content);
    });
  }

  vread(type: FhirType, id: string, versionId: string): Promise<StoredResource> {
    return this.track('vread', type, id, async () => {
      await this.visible(type, id);
      const v = /^\d{1,9}$/.test(versionId) ? Number(versionId) : -1;
      const row = (await this.conn.maybeOne(sql.unsafe`
        SELECT deleted, content FROM fhir_history WHERE resource_type = ${type} AND id = ${id} AND version_id = ${v}`)) as {
        deleted: boolean;
        content: Resource;
      } | null;
      if (!row) throw new NotFoundError(`${type}/${id}/_history/${versionId} not found`);
      if (row.deleted) throw new GoneError(`${type}/${id} version ${versionId} is a deletion`);
      return meta(row.content);
    });
  }

  /** Throws 404 unless the resource (deleted or not) exists and the caller may read it. */
  protected async visible(type: FhirType, id: string): Promise<void> {
    this.policy('read', type);
    const row = await this.conn.maybeOne(sql.unsafe`
      SELECT 1 FROM ${sql.identifier([RESOURCES[type].table])} r WHERE r.id = ${id} AND ${this.scope('read', type)}`);
    if (!row) throw new NotFoundError(`${type}/${id} not found`);
  }

  /** Parses and runs a search (query string or `_search` form). */
  search(type: FhirType, query: Record<string, string | string[] | undefined>, strict = false) {
    return this.track('search', type, undefined, async () => {
      this.policy('search', type);
      const plan = parseSearch(type, query, {
        strict,
        defaultCount: this.ctx.config.fhirDefaultCount,
        maxCount: this.ctx.config.fhirMaxCount,
      } satisfies ParseOptions);
      return { plan, page: await this.runPlan(plan) };
    });
  }

  protected runPlan(plan: SearchPlan): Promise<SearchPage> {
    const scope = (t: FhirType) =>
      t === plan.type || this.access?.allows('search', t) ? this.scope('search', t) : sql.fragment`FALSE`;
    return runSearch(this.conn, plan, scope, this.restrictions(plan.type));
  }

  /** Instance history (id given) or type history. `_count`, `_since` and the paging cursor come from the query. */
  history(type: FhirType, id: string | undefined, query: Record<string, string | undefined>) {
    return this.track('history', type, id, async () => {
      // Instance history is a read of that resource; type history is a search (as the scope check sees them).
      if (id !== undefined) await this.visible(type, id);
      else this.policy('search', type);
      const count = Math.min(Number(query['_count'] ?? this.ctx.config.fhirDefaultCount), this.ctx.config.fhirMaxCount);
      if (!Number.isInteger(count) || count < 0)
        throw new BadRequestError('_count must be a non-negative integer', ['_count']);
      const since = query['_since'] ? new Date(query['_since']) : undefined;
      if (since && Number.isNaN(since.getTime())) throw new BadRequestError('invalid _since', ['_since']);
      const cursor = query['_cursor'] ? decodeCursor(query['_cursor']) : undefined;
      if (cursor && (!cursor.v || !isTimestampText(cursor.v) || !/^\d{1,9}:/.test(cursor.id))) {
        throw new BadRequestError('invalid paging cursor', ['_cursor']);
      }
      return runHistory(
        this.conn,
        {
          type,
          ...(id === undefined ? {} : { id }),
          count,
          ...(since ? { since } : {}),
          ...(cursor ? { cursor } : {}),
        },
        this.scope(id === undefined ? 'search' : 'read', type, 'h'),
      ) satisfies Promise<{ entries: HistoryEntry[] }>;
    });
  }

  /** create (server-assigned id), with conditional create by `If-None-Exist` (https://hl7.org/fhir/R4/http.html#ccreate). */
  create(type: FhirType, body: Resource, ifNoneExist?: string): Promise<WriteResult> {
    return this.track('create', type, undefined, async () => {
      if (ifNoneExist !== undefined) {
        this.policy('search', type);
        const query: Record<string, string[]> = {};
        for (const [k, v] of new URLSearchParams(ifNoneExist)) query[k] = [...(query[k] ?? []), v];
        const plan = parseSearch(type, query, { strict: true, defaultCount: 2, maxCount: 2 });
        plan.count = 2;
        const page = await this.runPlan({ ...plan, include: [], revInclude: [], total: false });
        if (page.matches.length > 1)
          throw new PreconditionFailedError('If-None-Exist matches several resources', 'multiple-matches');
        const match = page.matches[0];
        if (match) return { ...meta(match), created: false };
      }
      return this.save(type, randomUUID(), 'POST', () => structuredClone(body));
    });
  }

  /** update, or create with a client-assigned id (https://hl7.org/fhir/R4/http.html#update). */
  update(type: FhirType, id: string, body: Resource, opts: { ifMatch?: number; orthancStudyId?: string } = {}) {
    return this.track('update', type, id, () =>
      this.save(
        type,
        id,
        'PUT',
        () => structuredClone(body),
        opts.ifMatch,
        opts.orthancStudyId ? { orthanc_study_id: opts.orthancStudyId } : {},
      ),
    );
  }

  /** JSON Patch (RFC 6902, https://hl7.org/fhir/R4/http.html#patch) of the current version. */
  patch(type: FhirType, id: string, ops: JsonPatch, ifMatch?: number): Promise<WriteResult> {
    return this.track('patch', type, id, () =>
      this.save(
        type,
        id,
        'PATCH',
        (current) => {
          if (!current) throw new NotFoundError(`${type}/${id} not found`);
          const next = structuredClone(current);
          let results: unknown[];
          try {
            results = applyPatch(next, ops);
          } catch (err) {
            throw new UnprocessableError(`JSON Patch failed: ${err instanceof Error ? err.message : 'error'}`);
          }
          const failed = results.find((r) => r instanceof Error) as Error | undefined;
          if (failed) throw new UnprocessableError(`JSON Patch failed: ${failed.message}`);
          if (next.resourceType !== type || next.id !== id)
            throw new BadRequestError('JSON Patch may not change resourceType or id');
          return next;
        },
        ifMatch,
      ),
    );
  }

  protected async save(
    type: FhirType,
    id: string,
    method: 'POST' | 'PUT' | 'PATCH',
    produce: (current: Resource | null) => Resource,
    ifMatch?: number,
    bridgeOverride: Partial<BridgeColumns> = {},
  ): Promise<WriteResult> {
    const table = RESOURCES[type].table;
    try {
      return await this.conn.transaction(async (tx) => {
        const current = (await tx.maybeOne(sql.unsafe`
          SELECT to_jsonb(t) - 'content' AS row, t.content FROM ${sql.identifier([table])} t WHERE t.id = ${id} FOR UPDATE`)) as {
          row: BridgeColumns & { version_id: number; deleted: boolean; patient_id: string | null };
          content: Resource;
        } | null;
        const live = current && !current.row.deleted ? current : null;
        const interaction: Interaction = live ? 'update' : 'create';
        this.policy(interaction, type);
        if (live && !this.inScope('update', type, live.row.patient_id))
          throw new ForbiddenError(`${type}/${id} is outside your patients`);
        if (ifMatch !== undefined && live?.row.version_id !== ifMatch) {
          throw new PreconditionFailedError(
            `version conflict: If-Match ${ifMatch}, current ${live?.row.version_id ?? 'none'}`,
          );
        }
        if (method === 'PATCH' && current?.row.deleted) throw new GoneError(`${type}/${id} was deleted`);
        const resource = produce(live?.content ?? null) as Resource & { id: string };
        resource.id = id;
        const { versionId: _v, lastUpdated: _l, ...keptMeta } = resource.meta ?? {};
        resource.meta = keptMeta;
        if (Object.keys(keptMeta).length === 0) delete resource.meta;
        assertSafeContent(resource, type, this.ctx.config.fhirMaxJsonDepth ?? DEFAULT_MAX_DEPTH);
        validateStructure(resource);
        // Validate with placeholder identifiers first; allocate from the sequences only when all checks passed.
        const draft = structuredClone(resource);
        await assignIdentifiers(tx, type, draft, current?.row ?? null, this.ctx.config, true);
        const profile = this.ctx.profiles.get(type);
        validateProfile(draft, profile);
        const draftIndex = extractIndex(type, draft, this.fhirBase);
        assertIndexable(
          type,
          draft,
          draftIndex,
          this.ctx.config.fhirMaxIndexedValueLength ?? DEFAULT_MAX_INDEXED_LENGTH,
        );
        const patientId = compartmentOf(type, id, draftIndex);
        if (!this.inScope(interaction, type, patientId)) {
          throw new ForbiddenError(`${type}/${id} would be outside your patients`);
        }
        await resolveReferences(tx, type, id, draft, this.fhirBase, (t) => this.scope('read', t));
        const bridge = {
          ...(await assignIdentifiers(tx, type, resource, current?.row ?? null, this.ctx.config)),
          ...bridgeOverride,
        };
        const index = extractIndex(type, resource, this.fhirBase);
        const versionId = (current?.row.version_id ?? 0) + 1;
        const lastUpdated = new Date().toISOString();
        resource.meta = {
          ...resource.meta,
          versionId: String(versionId),
          lastUpdated,
          ...(profile?.url && !resource.meta?.profile?.includes(profile.url)
            ? { profile: [...(resource.meta?.profile ?? []), profile.url] }
            : {}),
        };
        await writeRow(
          tx,
          type,
          resource,
          { versionId, lastUpdated, patientId, sortDate: index.sortDate, sortString: index.sortString },
          bridge,
        );
        await writeHistory(tx, type, resource, { versionId, lastUpdated, patientId, deleted: false, method });
        await writeIndex(tx, type, id, index);
        if (type === 'DiagnosticReport') await reflectReport(tx, resource as DiagnosticReport, this.fhirBase);
        const audited = method === 'PATCH' ? 'patch' : live ? 'update' : 'create';
        await this.onWrite?.(tx, { interaction: audited, type, id, versionId, patientId, status: live ? 200 : 201 });
        return { resource, versionId, lastUpdated, created: !live };
      });
    } catch (err) {
      if (err instanceof UniqueIntegrityConstraintViolationError) {
        const [message, path] = CONFLICTS[err.constraint ?? ''] ?? [`${type}/${id} was written concurrently`, type];
        throw new ConflictError(message, [path]);
      }
      throw err;
    }
  }
}
