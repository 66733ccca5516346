/**
 * Code systems and codes of the audit events, as IHE Basic Audit Log Patterns (BALP) and DICOM PS3.15 use them.
 *
 * - BALP: https://profiles.ihe.net/ITI/BALP/ (content profiles, Read/Query/Create/Update/Delete patterns)
 * - DICOM audit messages: https://dicom.nema.org/medical/dicom/current/output/html/part15.html#sect_A.5
 * - FHIR R4 AuditEvent: https://hl7.org/fhir/R4/auditevent.html
 */
import type { Coding } from '@medplum/fhirtypes';

export const SYSTEM = {
  /** https://terminology.hl7.org/CodeSystem-audit-event-type.html */
  auditEventType: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  /** https://hl7.org/fhir/R4/codesystem-restful-interaction.html */
  restfulInteraction: 'http://hl7.org/fhir/restful-interaction',
  /** https://dicom.nema.org/medical/dicom/current/output/chtml/part16/chapter_D.html */
  dicom: 'http://dicom.nema.org/resources/ontology/DCM',
  /** https://terminology.hl7.org/CodeSystem-audit-event-outcome.html */
  outcome: 'http://terminology.hl7.org/CodeSystem/audit-event-outcome',
  /** https://terminology.hl7.org/CodeSystem-audit-entity-type.html */
  entityType: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  /** https://terminology.hl7.org/CodeSystem-object-role.html */
  objectRole: 'http://terminology.hl7.org/CodeSystem/object-role',
  /** https://terminology.hl7.org/CodeSystem-v3-ParticipationType.html */
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  /** https://terminology.hl7.org/CodeSystem-provenance-participant-type.html */
  provenanceParticipant: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  /** https://terminology.hl7.org/CodeSystem-security-source-type.html */
  securitySourceType: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  /** https://terminology.hl7.org/CodeSystem-v3-ActReason.html (SMART/IUA purpose_of_use) */
  actReason: 'http://terminology.hl7.org/CodeSystem/v3-ActReason',
  /** https://hl7.org/fhir/R4/codesystem-network-type.html */
  networkType: 'http://hl7.org/fhir/network-type',
  /** https://terminology.hl7.org/CodeSystem-v2-0203.html (identifier types: ACSN accession number) */
  identifierType: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  /** https://profiles.ihe.net/ITI/BALP/CodeSystem-BasicAuditEntityType.html (XrequestId) */
  balpEntityType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType',
  /** https://profiles.ihe.net/ITI/BALP/CodeSystem-UserAgentTypes.html (UserOauthAgent, AuthzOauthService) */
  balpUserAgentType: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes',
  /** IHE transaction codes, e.g. ITI-71 Get Access Token (https://profiles.ihe.net/ITI/IUA/) */
  iheEventType: 'urn:ihe:event-type-code',
  /** RFC 3986 URIs as identifiers (this server's base URL). */
  uri: 'urn:ietf:rfc:3986',
  /** OAuth client ids (RFC 6749 §2.2); our own naming URN. */
  oauthClientId: 'urn:ietf:params:oauth:client-id',
} as const;

/** Prefix of a token's jti when recorded in `agent.policy` (BALP OAUTHaccessTokenUse: RFC 3553 URN). */
export const JTI_PREFIX = 'urn:ietf:params:oauth:jti:';

/** BALP profile canonical URLs (https://profiles.ihe.net/ITI/BALP/artifacts.html). */
export const BALP_PROFILE = {
  read: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read',
  patientRead: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead',
  query: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Query',
  patientQuery: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery',
  create: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create',
  patientCreate: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate',
  update: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Update',
  patientUpdate: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientUpdate',
  delete: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Delete',
  patientDelete: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientDelete',
  oauthToken: 'https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.OAUTHaccessTokenUse.Minimal',
} as const;

const c = (system: string, code: string, display: string): Coding => ({ system, code, display });

/** AuditEvent.type codes. */
export const TYPE = {
  rest: c(SYSTEM.auditEventType, 'rest', 'Restful Operation'),
  /** DICOM PS3.15 A.5.3.10: a query (QIDO-RS). */
  query: c(SYSTEM.dicom, '110112', 'Query'),
  /** DICOM PS3.15 A.5.3.4: instances sent (WADO-RS, action R) or received (STOW-RS, action C). */
  instancesTransferred: c(SYSTEM.dicom, '110104', 'DICOM Instances Transferred'),
  /** DICOM PS3.15 A.5.3.7: data exported out of the system (a study downloaded as an archive, action R). */
  export: c(SYSTEM.dicom, '110106', 'Export'),
  /** DICOM PS3.15 A.5.3.12: login, logout, token issue. */
  userAuthentication: c(SYSTEM.dicom, '110114', 'User Authentication'),
  /** DICOM PS3.15 A.5.3.11: e.g. a refused client authentication. */
  securityAlert: c(SYSTEM.dicom, '110113', 'Security Alert'),
} as const;

/** The FHIR restful interactions (AuditEvent.subtype for rest events). */
export type RestInteraction =
  | 'read'
  | 'vread'
  | 'update'
  | 'patch'
  | 'delete'
  | 'history-instance'
  | 'history-type'
  | 'history-system'
  | 'create'
  | 'search-type'
  | 'search-system'
  | 'capabilities'
  | 'transaction'
  | 'batch'
  | 'operation';

export function restSubtype(interaction: RestInteraction): Coding {
  return c(SYSTEM.restfulInteraction, interaction, interaction);
}

export const SUBTYPE = {
  login: c(SYSTEM.dicom, '110122', 'Login'),
  /** IHE IUA ITI-71 Get Access Token (BALP/IUA pattern for a token issued by the authorization server). */
  getAccessToken: c(SYSTEM.iheEventType, 'ITI-71', 'Get Access Token'),
  nodeAuthentication: c(SYSTEM.dicom, '110126', 'Node Authentication'),
} as const;

/** AuditEvent.action: C create, R read/view, U update, D delete, E execute (queries, logins). */
export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E';

/** AuditEvent.outcome: 0 success, 4 minor failure (HTTP 4xx), 8 serious failure (HTTP 5xx), 12 major failure. */
export type AuditOutcome = '0' | '4' | '8' | '12';

export const AGENT_TYPE = {
  application: c(SYSTEM.dicom, '110150', 'Application'),
  destinationRole: c(SYSTEM.dicom, '110152', 'Destination Role ID'),
  sourceRole: c(SYSTEM.dicom, '110153', 'Source Role ID'),
  custodian: c(SYSTEM.provenanceParticipant, 'custodian', 'Custodian'),
  informationRecipient: c(SYSTEM.participationType, 'IRCP', 'information recipient'),
  author: c(SYSTEM.participationType, 'AUT', 'author (originator)'),
  oauthUser: c(SYSTEM.balpUserAgentType, 'UserOauthAgent', 'User OAuth Agent participant'),
  authServer: c(SYSTEM.balpUserAgentType, 'AuthzOauthService', 'OAuth Authorization Server'),
} as const;

export const ENTITY_TYPE = {
  person: c(SYSTEM.entityType, '1', 'Person'),
  systemObject: c(SYSTEM.entityType, '2', 'System Object'),
  requestId: c(
    SYSTEM.balpEntityType,
    'XrequestId',
    'transport specific unique identifier where http X-Request-Id is used',
  ),
} as const;

export const ENTITY_ROLE = {
  patient: c(SYSTEM.objectRole, '1', 'Patient'),
  report: c(SYSTEM.objectRole, '3', 'Report'),
  domainResource: c(SYSTEM.objectRole, '4', 'Domain Resource'),
  securityResource: c(SYSTEM.objectRole, '13', 'Security Resource'),
  query: c(SYSTEM.objectRole, '24', 'Query'),
} as const;

export const IDENTIFIER_TYPE = {
  studyInstanceUid: c(SYSTEM.dicom, '110180', 'Study Instance UID'),
  accession: c(SYSTEM.identifierType, 'ACSN', 'Accession ID'),
} as const;

export const OUTCOME_DISPLAY: Record<AuditOutcome, string> = {
  '0': 'Success',
  '4': 'Minor failure',
  '8': 'Serious failure',
  '12': 'Major failure',
};
