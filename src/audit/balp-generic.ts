/**
 * Fallback builders for requests whose handler did not describe the access: only what the route and the status
 * tell (never anything looked up, so never data of a patient). Used by the audit plugin so that no request under
 * /fhir, /dicom-web, /api or /auth goes unrecorded. BALP: https://profiles.ihe.net/ITI/BALP/
 */
import type { AuditEvent, Coding } from '@medplum/fhirtypes';
import { type AuditBase, dataEntity, frame } from './balp.ts';
import { type AuditAction, type RestInteraction, restSubtype, TYPE } from './codes.ts';

const BY_METHOD: Record<string, [RestInteraction, AuditAction]> = {
  GET: ['read', 'R'],
  HEAD: ['read', 'R'],
  POST: ['create', 'C'],
  PUT: ['update', 'U'],
  PATCH: ['patch', 'U'],
  DELETE: ['delete', 'D'],
};

/** A request to the facade's own JSON API (`/api/...`): type rest, subtype by method, the path as the entity. */
export function apiRequestEvent(base: AuditBase, input: { method: string; path: string }): AuditEvent {
  const [interaction, action] = BY_METHOD[input.method] ?? (['operation', 'E'] as const);
  const direction = action === 'R' ? 'read' : action === 'D' ? 'delete' : 'write';
  return frame(base, TYPE.rest, [restSubtype(interaction)], action, direction, [dataEntity({ display: input.path })]);
}

/** A request to the authorization server that its handler did not describe: User Authentication, by path. */
export function authRequestEvent(base: AuditBase, input: { subtype?: Coding | undefined; path: string }): AuditEvent {
  return frame(base, TYPE.userAuthentication, input.subtype ? [input.subtype] : [], 'E', 'auth', [
    dataEntity({ display: input.path }),
  ]);
}
