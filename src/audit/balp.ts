/**
 * Pure builders of IHE BALP AuditEvents (https://profiles.ihe.net/ITI/BALP/) for the FHIR RESTful interactions, plus
 * the parts every event shares: agents (user, client app with its network address, this server), source, the
 * request-id entity, patient entities and outcome. DICOMweb and authentication events are in balp-dicom.ts and
 * balp-auth.ts. FHIR R4 AuditEvent: https://hl7.org/fhir/R4/auditevent.html.
 *
 * Denials: when {@link AuditBase.denied} is set, every patient entity is dropped whatever the caller passed, so an
 * event about a refused or hidden (404) access never puts the patient the caller was not allowed to see into that
 * patient's compartment. Only what the caller sent itself (the requested reference, its query) is kept, plus, for
 * auditors, the patients the request named but was not shown ({@link AuditBase.requestedPatientIds}): entities marked
 * with chain.ts `REQUESTED_DETAIL`, indexed apart (`patient=` finds them for auditors; a patient never sees them).
 */
import type {
  AuditEvent,
  AuditEventAgent,
  AuditEventEntity,
  AuditEventSource,
  CodeableConcept,
  Coding,
  Reference,
} from '@medplum/fhirtypes';

type AgentRef = NonNullable<AuditEventAgent['who']>;
import type { Agent } from '../auth/access.ts';
import { REQUESTED_DETAIL } from './chain.ts';
import {
  AGENT_TYPE,
  type AuditAction,
  type AuditOutcome,
  BALP_PROFILE,
  ENTITY_ROLE,
  ENTITY_TYPE,
  JTI_PREFIX,
  type RestInteraction,
  restSubtype,
  SYSTEM,
  TYPE,
} from './codes.ts';

/** What every event needs to know about the request. */
export interface AuditBase {
  /** ISO instant the event is recorded at. */
  readonly recorded: string;
  /** The request id (X-Request-Id), recorded as the BALP transaction entity. */
  readonly requestId: string;
  /** The caller's network address as this server sees it (honours trustProxy). */
  readonly network: string | undefined;
  /** Public base URL of this server: the source and the server agent. */
  readonly serverBaseUrl: string;
  /** The authenticated caller; undefined when the request carried no valid credentials. */
  readonly agent: Agent | undefined;
  readonly outcome: AuditOutcome;
  /** A short reason for a failure (never data of a patient). */
  readonly outcomeDesc?: string | undefined;
  /** The request was refused (401/403) or answered 404 to hide existence: no patient data may be recorded. */
  readonly denied?: boolean | undefined;
  /** Patients the request named (by id, study, MRN...) that it was not shown: recorded for auditors only. */
  readonly requestedPatientIds?: readonly string[] | undefined;
}

/** The direction of the interaction, which decides the agents' DICOM role codes (BALP RESTful activities). */
export type Direction = 'read' | 'query' | 'write' | 'delete' | 'auth';

/** Maps an HTTP status to the AuditEvent outcome: 2xx/3xx success, 4xx minor failure, 5xx serious failure. */
export function outcomeForStatus(status: number): AuditOutcome {
  if (status < 400) return '0';
  if (status < 500) return '4';
  return '8';
}

/** A FHIR-style reference (`Type/id`) when the value looks like one, else undefined. */
export function asReference(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return /^(https?:\/\/\S+\/)?[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9.-]{1,64}$/.test(value) ? value : undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** `purpose_of_use` values (`code` or `system|code`) as CodeableConcepts, v3-ActReason by default. */
export function purposeOfUse(values: readonly string[] | undefined): CodeableConcept[] | undefined {
  if (!values?.length) return undefined;
  return values.map((v) => {
    const bar = v.lastIndexOf('|');
    const hash = v.lastIndexOf('#');
    const at = bar >= 0 ? bar : hash;
    const coding: Coding =
      at > 0 ? { system: v.slice(0, at), code: v.slice(at + 1) } : { system: SYSTEM.actReason, code: v };
    return { coding: [coding] };
  });
}

/** The human (or system) user agent, from the token: BALP `agent[user]` + OAUTHaccessTokenUse (jti in policy). */
export function userAgent(agent: Agent, direction: Direction): AuditEventAgent {
  const ref = asReference(agent.fhirUser);
  const who: AgentRef = { identifier: { value: agent.sub }, display: agent.who };
  if (ref) who.reference = ref;
  const participation =
    direction === 'write' || direction === 'delete' ? AGENT_TYPE.author : AGENT_TYPE.informationRecipient;
  const out: AuditEventAgent = {
    type: { coding: [participation, AGENT_TYPE.oauthUser] },
    who,
    name: agent.who,
    requestor: true,
  };
  if (agent.roles.length) out.role = agent.roles.map((r) => ({ text: r }));
  if (agent.jti) out.policy = [`${JTI_PREFIX}${agent.jti}`];
  const pou = purposeOfUse(agent.purposeOfUse);
  if (pou) out.purposeOfUse = pou;
  return out;
}

/** Agent types of the client and the server by direction (BALP 3:5.7.3 RESTful activities). */
function roles(direction: Direction): { client: Coding; server: Coding } {
  switch (direction) {
    case 'read':
      return { client: AGENT_TYPE.destinationRole, server: AGENT_TYPE.sourceRole };
    case 'query':
    case 'write':
      return { client: AGENT_TYPE.sourceRole, server: AGENT_TYPE.destinationRole };
    case 'delete':
      return { client: AGENT_TYPE.application, server: AGENT_TYPE.custodian };
    case 'auth':
      return { client: AGENT_TYPE.application, server: AGENT_TYPE.authServer };
  }
}

/** The client application agent: `client_id` and the network address it connected from. */
export function clientAgent(base: AuditBase, direction: Direction): AuditEventAgent {
  const clientId = base.agent?.clientId;
  const who: AgentRef = clientId
    ? { identifier: { system: SYSTEM.oauthClientId, value: clientId }, display: clientId }
    : { display: base.agent ? 'client not identified by the token' : 'unauthenticated client' };
  const out: AuditEventAgent = { type: { coding: [roles(direction).client] }, who, requestor: false };
  if (base.network) out.network = { address: base.network, type: '2' };
  return out;
}

/** This server as an agent. */
export function serverAgent(base: AuditBase, direction: Direction): AuditEventAgent {
  return {
    type: { coding: [roles(direction).server] },
    who: { identifier: { system: SYSTEM.uri, value: base.serverBaseUrl }, display: 'imaging EHR facade' },
    requestor: false,
    network: { address: hostOf(base.serverBaseUrl), type: '1' },
  };
}

/** The agents of an event: the user (when authenticated), the client app and this server. */
export function agents(base: AuditBase, direction: Direction): AuditEventAgent[] {
  const out: AuditEventAgent[] = [];
  if (base.agent) out.push(userAgent(base.agent, direction));
  out.push(clientAgent(base, direction), serverAgent(base, direction));
  return out;
}

/** This server as the source (observer) of the event. */
export function source(base: AuditBase): AuditEventSource {
  return {
    site: hostOf(base.serverBaseUrl),
    observer: { identifier: { system: SYSTEM.uri, value: base.serverBaseUrl }, display: 'imaging EHR facade' },
    type: [{ system: SYSTEM.securitySourceType, code: '4', display: 'Application Server' }],
  };
}

/** BALP `entity[transaction]`: the X-Request-Id. */
export function requestIdEntity(requestId: string): AuditEventEntity {
  return { type: ENTITY_TYPE.requestId, what: { identifier: { value: requestId } } };
}

/** BALP `entity[patient]`. */
export function patientEntity(patientId: string): AuditEventEntity {
  return { type: ENTITY_TYPE.person, role: ENTITY_ROLE.patient, what: { reference: `Patient/${patientId}` } };
}

/**
 * A patient the request named but was not shown (a refused read, a search narrowed to the caller's compartment): not
 * the BALP patient slice (no role Patient), so it is never taken for a patient whose data was accessed.
 */
export function requestedPatientEntity(patientId: string): AuditEventEntity {
  return {
    type: ENTITY_TYPE.person,
    what: { reference: `Patient/${patientId}` },
    description: 'patient named by the request, not shown to the caller',
    detail: [{ ...REQUESTED_DETAIL }],
  };
}

/** BALP `entity[query]`: the raw query, base64 (so that malformed or malicious input is kept exactly). */
export function queryEntity(rawQuery: string, description?: string): AuditEventEntity {
  const out: AuditEventEntity = {
    type: ENTITY_TYPE.systemObject,
    role: ENTITY_ROLE.query,
    query: Buffer.from(rawQuery, 'utf8').toString('base64'),
  };
  if (description) out.description = description;
  return out;
}

/** BALP `entity[data]`: a resource that was read or written. */
export function dataEntity(what: Reference): AuditEventEntity {
  return { type: ENTITY_TYPE.systemObject, role: ENTITY_ROLE.domainResource, what };
}

/** Patient entities, unless the event is a denial (then none: see the module comment). */
export function patientEntities(base: AuditBase, patientIds: Iterable<string>): AuditEventEntity[] {
  if (base.denied) return [];
  return [...new Set(patientIds)].sort().map(patientEntity);
}

/** The requested-patient entities of an event: those named by the request and not already its patient entities. */
function requestedEntities(base: AuditBase, entity: readonly AuditEventEntity[]): AuditEventEntity[] {
  if (!base.requestedPatientIds?.length) return [];
  const shown = new Set(entity.filter((e) => e.role?.code === ENTITY_ROLE.patient.code).map((e) => e.what?.reference));
  return [...new Set(base.requestedPatientIds)]
    .sort()
    .filter((id) => !shown.has(`Patient/${id}`))
    .map(requestedPatientEntity);
}

/** The frame of an event: type, subtype, action, recorded, outcome, agents, source. */
export function frame(
  base: AuditBase,
  type: Coding,
  subtype: Coding[],
  action: AuditAction,
  direction: Direction,
  entity: AuditEventEntity[],
  profile?: string,
): AuditEvent {
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    ...(profile && base.outcome === '0' ? { meta: { profile: [profile] } } : {}),
    type,
    ...(subtype.length ? { subtype } : {}),
    action,
    recorded: base.recorded,
    outcome: base.outcome,
    ...(base.outcome !== '0' && base.outcomeDesc ? { outcomeDesc: base.outcomeDesc } : {}),
    agent: agents(base, direction),
    source: source(base),
    entity: [...entity, ...requestedEntities(base, entity), requestIdEntity(base.requestId)],
  };
  return event;
}

export interface FhirRestInput {
  readonly interaction: RestInteraction;
  readonly resourceType?: string | undefined;
  readonly id?: string | undefined;
  readonly versionId?: string | undefined;
  /** Patients whose data the caller touched (only those it was allowed to). */
  readonly patientIds?: Iterable<string> | undefined;
  /** The raw query string (without `?`) for searches and history. */
  readonly query?: string | undefined;
}

interface RestShape {
  action: AuditAction;
  direction: Direction;
  profile: keyof typeof BALP_PROFILE;
  patientProfile: keyof typeof BALP_PROFILE;
}

/** BALP pattern of each interaction: action, direction and the (Patient)Read/Query/Create/Update/Delete profile. */
const REST: Record<RestInteraction, RestShape> = {
  read: { action: 'R', direction: 'read', profile: 'read', patientProfile: 'patientRead' },
  vread: { action: 'R', direction: 'read', profile: 'read', patientProfile: 'patientRead' },
  'search-type': { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
  'search-system': { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
  'history-instance': { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
  'history-type': { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
  'history-system': { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
  capabilities: { action: 'R', direction: 'read', profile: 'read', patientProfile: 'read' },
  create: { action: 'C', direction: 'write', profile: 'create', patientProfile: 'patientCreate' },
  update: { action: 'U', direction: 'write', profile: 'update', patientProfile: 'patientUpdate' },
  patch: { action: 'U', direction: 'write', profile: 'update', patientProfile: 'patientUpdate' },
  delete: { action: 'D', direction: 'delete', profile: 'delete', patientProfile: 'patientDelete' },
  transaction: { action: 'E', direction: 'write', profile: 'create', patientProfile: 'patientCreate' },
  batch: { action: 'E', direction: 'write', profile: 'create', patientProfile: 'patientCreate' },
  operation: { action: 'E', direction: 'query', profile: 'query', patientProfile: 'patientQuery' },
};

const PROFILED = new Set<RestInteraction>([
  'read',
  'vread',
  'search-type',
  'search-system',
  'history-instance',
  'history-type',
  'create',
  'update',
  'patch',
  'delete',
]);

/** An AuditEvent for one FHIR RESTful interaction (type `rest`, subtype the restful-interaction code). */
export function fhirRestEvent(base: AuditBase, input: FhirRestInput): AuditEvent {
  const shape = REST[input.interaction];
  const entities: AuditEventEntity[] = [];
  const patients = patientEntities(base, input.patientIds ?? []);
  entities.push(...patients);
  if (input.resourceType && input.id) {
    const v = input.versionId ? `/_history/${input.versionId}` : '';
    entities.push(dataEntity({ reference: `${input.resourceType}/${input.id}${v}` }));
  } else if (shape.direction === 'write' && input.resourceType) {
    entities.push(dataEntity({ display: input.resourceType }));
  }
  if (shape.direction === 'query' || input.query) {
    const path = [input.resourceType, input.id, input.interaction.startsWith('history') ? '_history' : undefined]
      .filter(Boolean)
      .join('/');
    entities.push(queryEntity(`${path}${input.query ? `?${input.query}` : ''}`, input.resourceType));
  }
  const profileKey = patients.length ? shape.patientProfile : shape.profile;
  const profile = PROFILED.has(input.interaction) ? BALP_PROFILE[profileKey] : undefined;
  return frame(base, TYPE.rest, [restSubtype(input.interaction)], shape.action, shape.direction, entities, profile);
}
