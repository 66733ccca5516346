/**
 * The per-request audit context (`req.audit`), pure apart from {@link AuditContext.writeWithin}. Handlers describe
 * the access as they learn it (interaction, patients, studies, query...); the audit plugin turns the description, or
 * a fallback derived from the route and the status when a handler described nothing, into exactly one AuditEvent.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Agent } from '../auth/access.ts';
import { type FhirPathKind, parseFhirPath } from '../fhir/rest/rest-path.ts';
import { type AuditBase, type FhirRestInput, outcomeForStatus } from './balp.ts';
import { type AuditDescription, buildAuditEvent, type CompactAuditRecord, compactRecord } from './compact.ts';
import { type AuditOutcome, type RestInteraction, SUBTYPE } from './codes.ts';
import type { RetrievalFacts, TransferTally } from './transfer-window.ts';
import { type AuditDb, appendAuditEvent, type StoredAuditEvent } from './store.ts';

export { type AuditDescription, buildAuditEvent } from './compact.ts';

function pathOf(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

const INSTANCE_INTERACTION: Record<string, RestInteraction> = {
  GET: 'read',
  HEAD: 'read',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** FHIR interaction from method and path segments below /fhir (https://hl7.org/fhir/R4/http.html). */
function fhirFallback(method: string, parts: string[], query: string): FhirRestInput {
  const p = parseFhirPath(parts.map((s) => decodeURIComponent(s)));
  const q = query || undefined;
  const post = method === 'POST';
  const byKind: Record<FhirPathKind, RestInteraction> = {
    operation: 'operation',
    system: post ? 'batch' : 'search-system',
    'system-history': 'history-system',
    type: post ? 'create' : 'search-type',
    'type-search': 'search-type',
    'type-history': 'history-type',
    'instance-history': 'history-instance',
    vread: 'vread',
    compartment: 'search-type',
    instance: INSTANCE_INTERACTION[method] ?? 'operation',
  };
  const interaction = byKind[p.kind];
  const resourceType = p.type && /^[A-Z][A-Za-z]+$/.test(p.type) ? p.type : undefined;
  if (interaction === 'operation') return { interaction, resourceType, id: p.id, query: q };
  if (p.kind === 'compartment') {
    // Patient/123/Observation is a search of Observation with patient=123.
    const query = [`${p.type}=${p.id ?? ''}`, q].filter(Boolean).join('&');
    return { interaction, resourceType: p.compartment, id: undefined, versionId: undefined, query };
  }
  return { interaction, resourceType, id: p.id, versionId: p.versionId, query: q };
}

const UID = /^[0-9.]{1,64}$/;

/** DICOMweb request from method and path below /dicom-web (PS3.18 §10.4 QIDO, §10.4 WADO-RS, §10.5 STOW-RS). */
function dicomFallback(method: string, path: string, parts: string[], query: string): AuditDescription {
  const studyUid = parts[0] === 'studies' && parts[1] && UID.test(parts[1]) ? parts[1] : undefined;
  const seriesUid = studyUid && parts[2] === 'series' && parts[3] && UID.test(parts[3]) ? parts[3] : undefined;
  const instanceUid = seriesUid && parts[4] === 'instances' && parts[5] && UID.test(parts[5]) ? parts[5] : undefined;
  const studies = studyUid ? [{ studyUid, seriesUid, instanceUid }] : [];
  if (method === 'POST') return { kind: 'dicom-store', input: { studies } };
  const last = parts[parts.length - 1];
  const isSearch = last === 'studies' || last === 'series' || last === 'instances';
  if (isSearch) return { kind: 'dicom-query', input: { path, query, studies } };
  return { kind: 'dicom-retrieve', input: { studies } };
}

/** How a route is audited (its rules' `audit`, src/http/route-rules.ts): the kind of its fallback event. */
export type AuditHow = 'fhir' | 'dicom' | 'api' | 'auth';

/**
 * The description a request gets when its handler gave none: of the kind its route declares (`how`; without one, the
 * kind of the path's surface), the details from the method and URL.
 */
export function fallbackDescription(method: string, url: string, how?: AuditHow): AuditDescription {
  const { path, query } = pathOf(url);
  const parts = path.split('/').filter(Boolean);
  const [prefix, ...rest] = parts;
  const surface: AuditHow =
    how ?? (prefix === 'fhir' ? 'fhir' : prefix === 'dicom-web' ? 'dicom' : prefix === 'auth' ? 'auth' : 'api');
  switch (surface) {
    case 'fhir':
      return { kind: 'fhir', input: fhirFallback(method, prefix === 'fhir' ? rest : parts, query) };
    case 'dicom':
      return prefix === 'dicom-web'
        ? dicomFallback(method, path.slice('/dicom-web'.length) || '/', rest, query)
        : dicomFallback(method, path, parts, query);
    case 'auth': {
      const last = rest[rest.length - 1];
      const subtype =
        last === 'token'
          ? SUBTYPE.getAccessToken
          : method === 'POST' && rest[0] === 'authorize'
            ? SUBTYPE.login
            : undefined;
      return { kind: 'auth', input: { path, subtype } };
    }
    default:
      return { kind: 'api', input: { method, path } };
  }
}

/** The facts of the request an event is built from. */
export interface RequestFacts {
  readonly requestId: string;
  readonly method: string;
  readonly url: string;
  readonly network: string | undefined;
  readonly serverBaseUrl: string;
  /** How the route is audited; without it, by the path's surface. */
  readonly how?: AuditHow;
}

const DENIAL_DESC: Record<number, string> = {
  401: 'authentication required or token refused',
  403: 'access denied',
  404: 'not found',
};

/** The per-request audit context. */
export class AuditContext {
  readonly facts: RequestFacts;
  /** The caller, once authenticated (set by the plugin from req.access). */
  agent: Agent | undefined;
  private description: AuditDescription | undefined;
  private readonly patients = new Set<string>();
  private readonly requested = new Set<string>();
  private hidden = false;
  private outcomeOverride: { outcome: AuditOutcome; desc?: string | undefined } | undefined;
  /** Set once the event is stored (or appended inside a handler's transaction: see {@link appendedId}). */
  written = false;
  /** The id of an event a handler appended inside its own transaction (checked by the plugin after commit). */
  appendedId: string | undefined;

  constructor(facts: RequestFacts) {
    this.facts = facts;
  }

  /** Describes the access (the last description wins: one request, one event). */
  describe(d: AuditDescription): this {
    this.description = d;
    return this;
  }
  fhir(input: FhirRestInput): this {
    return this.describe({ kind: 'fhir', input });
  }
  /** Adds patients whose data the caller was allowed to touch. */
  addPatients(...ids: (string | undefined)[]): this {
    for (const id of ids) if (id) this.patients.add(id);
    return this;
  }
  /** Adds patients the request named (by id, study, MRN...) whatever it was shown: recorded for auditors only. */
  addRequested(...ids: (string | undefined)[]): this {
    for (const id of ids) if (id) this.requested.add(id);
    return this;
  }
  /** The answer hides a refusal (a 404 for a resource that exists but may not be seen): record a denial. */
  deny(): this {
    this.hidden = true;
    return this;
  }
  /** For answers whose status does not tell the outcome (a login form shown again after a failed login). */
  outcome(outcome: AuditOutcome, desc?: string): this {
    this.outcomeOverride = { outcome, desc };
    return this;
  }
  get described(): AuditDescription | undefined {
    return this.description;
  }

  /** The base of the event for a response with `status`. Denials (401, 403, any 404, deny()) keep no patient data. */
  base(status: number, recorded = new Date()): AuditBase {
    const denied = this.hidden || status === 401 || status === 403 || status === 404;
    const outcome = this.outcomeOverride?.outcome ?? (this.hidden && status < 400 ? '4' : outcomeForStatus(status));
    const desc =
      this.outcomeOverride?.desc ??
      (this.hidden ? 'access denied (answered as not found)' : (DENIAL_DESC[status] ?? `HTTP ${status}`));
    return {
      recorded: recorded.toISOString(),
      requestId: this.facts.requestId,
      network: this.facts.network,
      serverBaseUrl: this.facts.serverBaseUrl,
      agent: this.agent,
      outcome,
      outcomeDesc: outcome === '0' ? undefined : desc,
      denied,
      requestedPatientIds: this.requested.size ? [...this.requested] : undefined,
    };
  }

  /** The handler's description, or the fallback of the request's route and URL. */
  #described(): AuditDescription {
    return this.description ?? fallbackDescription(this.facts.method, this.facts.url, this.facts.how);
  }

  /** `d` with the patients the caller was allowed to touch. */
  #withPatients(d: AuditDescription): AuditDescription {
    return this.patients.size ? addPatientIds(d, [...this.patients]) : d;
  }

  /** The description the event is built from: the handler's (or the fallback), with the patients added. */
  #fullDescription(): AuditDescription {
    return this.#withPatients(this.#described());
  }

  /** The one event of this request for a response with `status`. */
  build(status: number, recorded = new Date()): AuditEvent {
    return buildAuditEvent(this.#fullDescription(), this.base(status, recorded));
  }

  /**
   * The same event as a compact record (compact.ts): what it is built from, which the audit writer stores and every
   * reader renders into exactly {@link build}'s event.
   */
  record(status: number, recorded = new Date()): CompactAuditRecord {
    return compactRecord(this.#fullDescription(), this.base(status, recorded));
  }

  /**
   * The study transfer this request is part of: a DICOMweb retrieval (not an archive export) of exactly one study,
   * with what it addressed (transfer-window.ts); undefined for anything else.
   */
  transfer(): { studyUid: string; facts: RetrievalFacts } | undefined {
    const d = this.#described();
    if (d.kind !== 'dicom-retrieve' || d.input.export || d.input.transfer || d.input.studies.length !== 1)
      return undefined;
    const s = d.input.studies[0] as (typeof d.input.studies)[number];
    return {
      studyUid: s.studyUid,
      facts: { seriesUid: s.seriesUid, instanceUid: s.instanceUid, frames: framesIn(this.facts.url) },
    };
  }

  /**
   * The compact record that closes a transfer window this request opened: the study as a whole with the window's
   * totals, and the agent, network, patients and request id of this opening request (so both records of a window share
   * the BALP transaction entity).
   */
  recordTransfer(studyUid: string, tally: TransferTally, recorded = new Date()): CompactAuditRecord {
    const d: AuditDescription = { kind: 'dicom-retrieve', input: { studies: [{ studyUid }], transfer: tally } };
    return compactRecord(this.#withPatients(d), this.base(200, recorded));
  }

  /**
   * Appends this request's event inside the handler's own transaction `tx` (so that a write and its audit commit
   * together) and marks it, so that the plugin does not write a second one; the plugin checks after the response
   * that it was committed, and records a fallback event otherwise.
   */
  async writeWithin(tx: AuditDb, status = 200): Promise<StoredAuditEvent> {
    const stored = await appendAuditEvent(tx, this.build(status));
    this.appendedId = stored.id;
    return stored;
  }
}

const FRAME_LIST = /\/frames\/([0-9,]+)(?:\/|\?|$)/;

/** The number of frames a WADO-RS URL asks for (`/frames/1,2,3`: 3); 0 when it names none. */
export function framesIn(url: string): number {
  const m = FRAME_LIST.exec(url);
  return m?.[1] ? m[1].split(',').filter(Boolean).length : 0;
}

function addPatientIds(d: AuditDescription, ids: string[]): AuditDescription {
  switch (d.kind) {
    case 'fhir':
    case 'dicom-query':
    case 'dicom-retrieve':
    case 'dicom-store': {
      const input = { ...d.input, patientIds: [...(d.input.patientIds ?? []), ...ids] };
      return { ...d, input } as AuditDescription;
    }
    case 'token-issued':
      return d.input.patientId ? d : { ...d, input: { ...d.input, patientId: ids[0] } };
    default:
      return d;
  }
}
