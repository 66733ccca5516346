/**
 * Mints a token from the built-in server's signing key without any OAuth flow: for `bin/ehr token` (development mode
 * only) and for tests. The token is exactly what the token endpoint would issue (same claims, audience, lifetime cap),
 * and the resource server still checks the user or client behind it against the database.
 */
import type { DatabasePool } from 'slonik';
import { CLI_CLIENT_ID } from './patient-reach.ts';
import { fhirUserOf, patientLoginScopes, patientOfUser } from './patient-user.ts';
import { type MintContext, type MintedToken, mintAccessToken } from './server/tokens.ts';
import { clientById, userByUsername } from './store.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** `bin/ehr token` outside development mode. */
export class DevelopmentOnlyError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DEVELOPMENT_ONLY';
  override name = 'DevelopmentOnlyError';
}

export interface LocalTokenRequest {
  /** A user name, or a backend client id (exactly one). */
  readonly username?: string;
  readonly clientId?: string;
  readonly scope: string;
  readonly patient?: string;
  readonly ttlS?: number;
}

export async function mintLocalToken(db: DatabasePool, mint: MintContext, r: LocalTokenRequest): Promise<MintedToken> {
  if ((r.username === undefined) === (r.clientId === undefined)) {
    throw new Error('give exactly one of a user name or a client id');
  }
  if (r.clientId !== undefined) {
    const client = await clientById(db, r.clientId);
    if (client?.kind !== 'backend') throw new Error(`no backend client ${r.clientId}`);
    return mintAccessToken(mint, { sub: client.clientId, clientId: client.clientId, scope: r.scope, ttlS: r.ttlS });
  }
  const user = await userByUsername(db, r.username!);
  if (!user) throw new Error(`no user ${r.username}`);
  // A patient login gets what the authorization server would give it: its own Patient, patient/ read scopes.
  const own = patientOfUser(user);
  if (own && r.patient !== undefined && r.patient !== own) {
    throw new Error(`${r.username} is a patient login for Patient/${own} only`);
  }
  return mintAccessToken(mint, {
    sub: user.id,
    clientId: CLI_CLIENT_ID,
    scope: own ? patientLoginScopes(r.scope) : r.scope,
    patient: own ?? r.patient,
    fhirUser: fhirUserOf(user),
    ttlS: r.ttlS,
  });
}
