/**
 * Turns a verified token into the caller the policy consumes: looks up the user or client behind it (so that a
 * deactivated user, a deleted client or a lowered scope ceiling take effect at once), checks revocation, rechecks a
 * user's `patient` claim against what the user reaches now (patient-reach.ts), and resolves the caller's patient sets
 * once for the request. Runs for every request the caller cache does not answer; the cache is dropped on every change
 * of grants, users, orders and revocations (NOTIFY triggers, auth-change-listener.ts), so each of these checks holds for every request.
 */
import type { DatabasePool } from 'slonik';
import type { Access, Agent } from './access.ts';
import { patientClaimBounded, reachablePatients, reaches } from './patient-reach.ts';
import { resolvePatientSets } from './patient-sets.ts';
import { type Caller, isRole, neededPatientSources, type Role } from './policy.ts';
import { narrowScopes, parseScopes } from './scopes.ts';
import { clientById, isRevoked, userByExternalIdentity, userById } from './store.ts';
import { accessFor } from './token-access.ts';
import { isStudyUid, VIEWER_REACH_CLAIM, VIEWER_STUDY_CLAIM } from './viewer-token.ts';
import { TokenError, type VerifiedToken } from './verify-token.ts';

const PATIENT_ID = /^[A-Za-z0-9.-]{1,64}$/;

/** `scope` (RFC 8693/9068 string) or `scp` (array, e.g. Okta). */
function scopeClaim(claims: Record<string, unknown>): string {
  if (typeof claims['scope'] === 'string') return claims['scope'];
  const scp = claims['scp'];
  if (Array.isArray(scp)) return scp.filter((s): s is string => typeof s === 'string').join(' ');
  return '';
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Was a token with this `iat` issued after `notBefore` (epoch seconds, null: no bound)? A missing `iat` is not. */
export function issuedAfter(iat: unknown, notBefore: number | null | undefined): boolean {
  if (notBefore === null || notBefore === undefined) return true;
  return typeof iat === 'number' && iat > notBefore;
}

/**
 * A token with the viewer-study claim (src/auth/viewer-token.ts) is a viewer token, whoever issued it (the claim only
 * ever narrows): limited to that study, or with reach `patient` to its patient context. A claim that is not a
 * StudyInstanceUID is refused.
 */
function viewerStudies(claims: Record<string, unknown>): { viewer?: true; studies?: readonly string[] } {
  const study = claims[VIEWER_STUDY_CLAIM];
  if (study === undefined) return {};
  if (typeof study !== 'string' || !isStudyUid(study)) throw new TokenError('viewer token study claim invalid');
  // Patient reach (a link from an order, for priors): the token's patient context bounds it, like any patient token.
  if (claims[VIEWER_REACH_CLAIM] === 'patient' && typeof claims['patient'] === 'string') return { viewer: true };
  return { viewer: true, studies: [study] };
}

export async function resolveAccess(db: DatabasePool, token: VerifiedToken): Promise<Access> {
  const { claims, issuer } = token;
  const sub = str(claims.sub)!;
  const jti = str(claims.jti);
  const clientId = str(claims['client_id']) ?? str(claims['azp']);
  if (issuer.builtin && !jti) throw new TokenError('token has no jti');
  if (jti && (await isRevoked(db, jti))) throw new TokenError('token revoked');

  let scope = scopeClaim(claims);
  const patientClaim = str(claims['patient']);
  if (patientClaim !== undefined && !PATIENT_ID.test(patientClaim)) throw new TokenError('token patient claim invalid');
  const fhirUser = str(claims['fhirUser']);
  const agentBase = {
    sub,
    ...(clientId ? { clientId } : {}),
    ...(jti ? { jti } : {}),
    ...(fhirUser ? { fhirUser } : {}),
  };

  // Backend service (client_credentials): sub is the client itself.
  if (clientId !== undefined && sub === clientId) {
    const client = await clientById(db, clientId);
    if (!client?.active || client.kind !== 'backend') {
      if (issuer.builtin) throw new TokenError('client unknown or inactive');
    }
    const usable = client?.active && client.kind === 'backend' ? client : undefined;
    if (usable) scope = narrowScopes(scope, usable.scopeCeiling).join(' ');
    const caller: Caller = {
      scopes: parseScopes(scope),
      roles: [],
      patientSets: {},
      ...(usable ? { clientPatients: usable.allowedPatients ?? 'all' } : {}),
      ...viewerStudies(claims),
    };
    const agent: Agent = { ...agentBase, who: `Device/${clientId}`, roles: [] };
    return accessFor(caller, agent);
  }

  // A user (possibly with a patient context chosen at launch).
  const user = issuer.builtin ? await userById(db, sub) : await userByExternalIdentity(db, issuer.issuer, sub);
  // A deactivated user ends every token naming them, also an external IdP's token mapped onto them.
  if ((issuer.builtin && !user) || (user && !user.active)) throw new TokenError('user unknown or inactive');
  if (user && !issuedAfter(claims.iat, user.tokensNotBefore)) {
    throw new TokenError("token issued before the user's tokens were revoked");
  }
  const roles: Role[] = user?.active ? user.roles.filter(isRole) : [];
  const scopes = parseScopes(scope);
  // The built-in server issued the patient context to this user (launch picker, viewer link): it lasts only as long
  // as the user still reaches that patient.
  const bounded = issuer.builtin && user && patientClaim !== undefined && patientClaimBounded(user.roles, clientId);
  const needsSets = bounded || scopes.resource.some((s) => s.context === 'user');
  const patientSets = user && needsSets ? await resolvePatientSets(db, user, neededPatientSources(roles)) : {};
  if (bounded && !reaches(reachablePatients(roles, patientSets), patientClaim)) {
    throw new TokenError('the user no longer has access to the token patient');
  }
  const caller: Caller = {
    scopes,
    roles,
    patientSets,
    ...(patientClaim !== undefined ? { patient: patientClaim } : {}),
    ...viewerStudies(claims),
  };
  const who = fhirUser ?? (user?.practitionerId ? `Practitioner/${user.practitionerId}` : `User/${sub}`);
  return accessFor(caller, { ...agentBase, who, roles });
}
