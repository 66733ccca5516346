/**
 * What one Bundle entry's audit record is made of (BALP: one AuditEvent per interaction): the types shared by the
 * Bundle runner (bundle-run.ts), the Bundle parser (bundle.ts) and the repository's write audit (repository-core.ts).
 * A leaf, so that those modules do not depend on each other through it.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { CommonQueryMethods } from 'slonik';
import type { FhirType } from './registry.ts';

/** The HTTP method of a Bundle entry (`Bundle.entry.request.method`). */
export type EntryMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The BALP restful interaction of an entry. */
export type EntryInteraction =
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

/** One entry's access, for its AuditEvent. */
export interface EntryAudit {
  method: EntryMethod;
  url: string;
  interaction: EntryInteraction;
  type: FhirType;
  id?: string;
  versionId?: string;
  query?: string;
  status: number;
  /** The compartment owner of a written resource. */
  patientId?: string | null;
  /** What was sent back for a read or search (its patients are recorded). */
  body?: Resource;
}

/** Appends the AuditEvent of one entry on `conn` (the entry's transaction for writes). */
export type EntryAuditor = (conn: CommonQueryMethods, e: EntryAudit) => Promise<void>;
