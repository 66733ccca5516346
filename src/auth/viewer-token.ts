/**
 * Viewer tokens: the short-lived, study-scoped bearer tokens inside `viewer-url` links.
 *
 * A viewer token is an ordinary access token of the built-in authorization server (RFC 9068 JWT, `typ: at+jwt`, signed
 * with its current key, audience = our FHIR base URL, a `jti` so that it can be revoked), issued for the user who asked
 * for the link (`sub`, `fhirUser`: the audit trail names them), with the narrowest grant the policy knows:
 * `patient/ImagingStudy.rs` in the context of the order's patient (SMART App Launch 2.x scopes). On top of that it
 * carries {@link VIEWER_STUDY_CLAIM}, the StudyInstanceUID. The resource server turns it into an `Access` of kind
 * `viewer` limited to that study (src/auth/resolve-caller.ts): it is accepted only by routes declaring
 * `who: 'token-or-viewer'` (DICOMweb reads), where the study limit narrows what it sees; anywhere else it is refused
 * even where its scope alone would be enough.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';

/** The private claim naming the one study a viewer token may read. */
export const VIEWER_STUDY_CLAIM = 'ehr_viewer_study';
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
  /** Seconds since the epoch; defaults to now (tests pass a past time to get an expired token). */
  readonly now?: number;
}

export interface ViewerToken {
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: Date;
}

export async function mintViewerToken(key: SigningKey, r: ViewerTokenRequest): Promise<ViewerToken> {
  if (!isStudyUid(r.studyInstanceUid)) throw new Error('not a StudyInstanceUID');
  const ttl = Math.min(Math.max(1, Math.floor(r.ttlS)), MAX_VIEWER_TOKEN_TTL_S);
  const now = r.now ?? Math.floor(Date.now() / 1000);
  const jti = randomUUID();
  const token = await new SignJWT({
    scope: VIEWER_SCOPE,
    client_id: VIEWER_CLIENT_ID,
    patient: r.patientId,
    ...(r.fhirUser ? { fhirUser: r.fhirUser } : {}),
    [VIEWER_STUDY_CLAIM]: r.studyInstanceUid,
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
  return { token, jti, expiresAt: new Date((now + ttl) * 1000) };
}
