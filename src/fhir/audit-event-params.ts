/**
 * The AuditEvent search parameters `/fhir/AuditEvent` implements, as the CapabilityStatement lists them
 * (https://hl7.org/fhir/R4/auditevent.html#search). The audit module's search (src/audit/search.ts) implements each
 * of them; its unit test checks that the two agree.
 */
export const AUDIT_EVENT_SEARCH_PARAMS: readonly { name: string; type: 'token' | 'reference' | 'date' | 'uri' }[] = [
  { name: 'date', type: 'date' },
  { name: 'agent', type: 'reference' },
  { name: 'entity', type: 'reference' },
  { name: 'patient', type: 'reference' },
  { name: 'type', type: 'token' },
  { name: 'subtype', type: 'token' },
  { name: 'action', type: 'token' },
  { name: 'outcome', type: 'token' },
  { name: 'source', type: 'reference' },
  { name: 'request-id', type: 'token' },
];
