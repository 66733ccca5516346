/**
 * Pure builders of authentication AuditEvents for the built-in SMART authorization server:
 *
 * - login succeeded or failed: DICOM "User Authentication" (DCM 110114) / "Login" (DCM 110122), PS3.15 A.5.3.12.
 * - token issued: DCM 110114 with subtype ITI-71 "Get Access Token", the BALP/IUA pattern
 *   (https://profiles.ihe.net/ITI/BALP/ , IUA https://profiles.ihe.net/ITI/IUA/): the client, the authorization
 *   server, the user; the issued token by its jti (RFC 3553 URN), never the token itself.
 * - client assertion refused (RFC 7523 private_key_jwt): DICOM "Security Alert" (DCM 110113) / "Node Authentication"
 *   (DCM 110126), PS3.15 A.5.3.11, outcome 4.
 */
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import type { Agent } from '../auth/access.ts';
import { type AuditBase, frame, patientEntities, queryEntity } from './balp.ts';
import { ENTITY_ROLE, ENTITY_TYPE, JTI_PREFIX, SUBTYPE, TYPE } from './codes.ts';

export interface LoginInput {
  /** The user name as typed (recorded for failures too: repeated failures are what an auditor looks for). */
  readonly username: string;
  /** The authenticated user, when the login succeeded. */
  readonly user?: Agent | undefined;
  readonly clientId?: string | undefined;
}

/** Base with the acting user replaced by the one logging in (the request itself has no token yet). */
function withUser(base: AuditBase, user: Agent | undefined, username: string, clientId?: string): AuditBase {
  const agent: Agent = user ?? { who: username, sub: username, roles: [] };
  return { ...base, agent: clientId && !agent.clientId ? { ...agent, clientId } : agent };
}

/** Login at the built-in authorization server: outcome 0 when it succeeded, 4 when it failed. */
export function loginEvent(base: AuditBase, input: LoginInput): AuditEvent {
  const b = withUser(base, input.user, input.username, input.clientId);
  return frame(b, TYPE.userAuthentication, [SUBTYPE.login], 'E', 'auth', []);
}

export interface TokenIssuedInput {
  readonly grantType: string;
  readonly clientId: string;
  /** The user the token acts for (absent for client_credentials). */
  readonly user?: Agent | undefined;
  /** jti of the issued access token. */
  readonly jti: string;
  readonly scope: string;
  /** The patient launch context of the token, if any. */
  readonly patientId?: string | undefined;
}

/** BALP/IUA token-response entity: the issued token by its jti, with its scope as detail. */
function tokenEntity(jti: string, scope: string): AuditEventEntity {
  return {
    type: ENTITY_TYPE.systemObject,
    role: ENTITY_ROLE.securityResource,
    what: { identifier: { value: `${JTI_PREFIX}${jti}` } },
    detail: [{ type: 'scope', valueString: scope }],
  };
}

/** A token issued by the built-in server (any grant). */
export function tokenIssuedEvent(base: AuditBase, input: TokenIssuedInput): AuditEvent {
  const agent: Agent = input.user ?? { who: input.clientId, sub: input.clientId, roles: [] };
  const b: AuditBase = { ...base, agent: { ...agent, clientId: input.clientId } };
  const entities: AuditEventEntity[] = [
    ...patientEntities(b, input.patientId ? [input.patientId] : []),
    // The token request without secrets, codes or verifiers: the grant type and the scope asked for.
    queryEntity(new URLSearchParams({ grant_type: input.grantType, scope: input.scope }).toString(), 'token request'),
    tokenEntity(input.jti, input.scope),
  ];
  return frame(b, TYPE.userAuthentication, [SUBTYPE.getAccessToken], 'E', 'auth', entities);
}

export interface ClientAssertionRefusedInput {
  /** The client_id the assertion claimed (its `iss`/`sub`), if it could be read. */
  readonly clientId?: string | undefined;
  /** Why it was refused (signature, expired, replayed jti, unknown client...). */
  readonly reason: string;
}

/** A refused client assertion: Security Alert / Node Authentication, outcome 4, the reason in outcomeDesc. */
export function clientAssertionRefusedEvent(base: AuditBase, input: ClientAssertionRefusedInput): AuditEvent {
  const b: AuditBase = {
    ...base,
    agent: undefined,
    outcome: base.outcome === '0' ? '4' : base.outcome,
    outcomeDesc: `client assertion refused: ${input.reason}`,
    denied: true,
  };
  const event = frame(b, TYPE.securityAlert, [SUBTYPE.nodeAuthentication], 'E', 'auth', []);
  const client = event.agent?.find((a) => a.type?.coding?.[0]?.code === '110150');
  if (client && input.clientId) client.who = { identifier: { value: input.clientId }, display: input.clientId };
  return event;
}
