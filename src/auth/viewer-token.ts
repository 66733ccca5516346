/**
 * Viewer tokens: the short-lived bearer tokens inside `viewer-url` links, renewed while the viewer is open
 * (src/viewer/renew.ts).
 *
 * A viewer token is an ordinary access token of the built-in authorization server (RFC 9068 JWT, `typ: at+jwt`, signed
 * with its current key, audience = our FHIR base URL, a `jti` so that it can be revoked), issued for the user who asked
 * for the link (`sub`, `fhirUser`: the audit trail names them), with the narrowest grant the policy knows:
 * `patient/ImagingStudy.rs` in the context of the order's patient (SMART App Launch 2.x scopes). On top of that it
 * carries {@link VIEWER_STUDY_CLAIM}, the StudyInstanceUID it opens, and {@link VIEWER_REACH_CLAIM}. The resource
 * server turns it into an `Access` of kind `viewer` (src/auth/resolve-caller.ts): limited to that study (reach
 * `study`), or to its patient's studies (reach `patient`, where the patient context does the filtering). It is accepted
 * only by routes declaring `who: 'token-or-viewer'` (DICOMweb reads, the viewer session routes); anywhere else it is
 * refused even where its scope alone would be enough.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';

/** The private claim naming the study a viewer token opens (the one study it may read, for a one-study link). */
export const VIEWER_STUDY_CLAIM = 'ehr_viewer_study';
/**
 * The private claim saying how far a viewer token reaches: `study` (only {@link VIEWER_STUDY_CLAIM}; a link shared for
 * one study, and every token without the claim) or `patient` (every study of the token's patient that the issuing user
 * may read, for comparison with priors; the resource server bounds it by the `patient` claim and the user's reach).
 */
export const VIEWER_REACH_CLAIM = 'ehr_viewer_reach';
/** The private claim naming the viewer session a token belongs to: kept by every renewal (src/viewer/renew.ts). */
export const VIEWER_SESSION_CLAIM = 'ehr_viewer_sid';
export type ViewerReach = 'study' | 'patient';
/** `client_id` of viewer tokens (no OAuth client is registered under it; it only labels the token in audit logs). */
export const VIEWER_CLIENT_ID = 'ehr-viewer-link';
export const VIEWER_SCOPE = 'patient/ImagingStudy.rs';
/** Hard ceiling of the configurable lifetime: 15 minutes. */
export const MAX_VIEWER_TOKEN_TTL_S = 900;

const UID = /^[0-9]+(\.[0-9]+)*$/;

export function isStudyUid(value: string): boolean {
  return value.length <= 64 && UID.test(value);
}

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly key: Parameters<SignJWT['sign']>[0];
}

export interface ViewerTokenRequest {
  readonly issuer: string;
  readonly audience: string;
  /** The user who asked for the link. */
  readonly sub: string;
  readonly fhirUser?: string | undefined;
  readonly patientId: string;
  readonly studyInstanceUid: string;
  readonly ttlS: number;
  /** `study` unless given (a link shared for one study). */
  readonly reach?: ViewerReach;
  /** The viewer session: a new one for a new link, the same one on renewal. */
  readonly sessionId?: string;
  /** Seconds since the epoch; defaults to now (tests pass a past time to get an expired token). */
  readonly now?: number;
}

export interface ViewerToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: Date;
  readonly sessionId: string;
}

export async function mintViewerToken(key: SigningKey, r: ViewerTokenRequest): Promise<ViewerToken> {
  if (!isStudyUid(r.studyInstanceUid)) throw new Error('not a StudyInstanceUID');
  const ttl = Math.min(Math.max(1, Math.floor(r.ttlS)), MAX_VIEWER_TOKEN_TTL_S);
  const now = r.now ?? Math.floor(Date.now() / 1000);
  const jti = randomUUID();
  const sessionId = r.sessionId ?? randomUUID();
  const token = await new SignJWT({
    scope: VIEWER_SCOPE,
    client_id: VIEWER_CLIENT_ID,
    patient: r.patientId,
    ...(r.fhirUser ? { fhirUser: r.fhirUser } : {}),
    [VIEWER_STUDY_CLAIM]: r.studyInstanceUid,
    [VIEWER_REACH_CLAIM]: r.reach ?? 'study',
    [VIEWER_SESSION_CLAIM]: sessionId,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(r.issuer)
    .setSubject(r.sub)
    .setAudience(r.audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttl)
    .setJti(jti)
    .sign(key.key);
  return { token, jti, expiresAt: new Date((now + ttl) * 1000), sessionId };
}
