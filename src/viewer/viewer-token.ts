/**
 * Viewer tokens: the short-lived bearer tokens inside `viewer-url` links, renewed while the viewer is open (renew.ts).
 *
 * A viewer token is an ordinary access token of the built-in authorization server (RFC 9068 JWT, `typ: at+jwt`, signed
 * with its current key, audience = our FHIR base URL, a `jti` so that it can be revoked), issued for the user who asked
 * for the link (`sub`, `fhirUser`: the audit trail names them), with the narrowest grant the policy knows:
 * `patient/ImagingStudy.rs` in the context of the order's patient (SMART App Launch 2.x scopes). On top of that it
 * carries {@link VIEWER_STUDY_CLAIM}, the StudyInstanceUID it opens, and {@link VIEWER_REACH_CLAIM}: {@link checkViewerUse}
 * confines it to DICOMweb reads of exactly that study (reach `study`) or of its patient's studies (reach `patient`,
 * where the patient context does the filtering): anywhere else it is refused even where its scope alone would be enough.
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

export type ViewerUse =
  | { readonly allowed: true }
  /** A study search without a StudyInstanceUID (OHIF's study browser): to be narrowed to the token's study. */
  | { readonly allowed: false; readonly status: 200; readonly reason: string }
  | { readonly allowed: false; readonly status: 401 | 404; readonly reason: string };

const ELSEWHERE: ViewerUse = {
  allowed: false,
  status: 401,
  reason: 'a viewer token is valid only for DICOMweb reads of its study',
};
const NO_OTHER_STUDIES: ViewerUse = { allowed: false, status: 200, reason: 'narrowed to the viewer token study' };
const OTHER_STUDY: ViewerUse = { allowed: false, status: 404, reason: 'not found for this viewer token' };

/**
 * May a viewer token for `study` be used on this request? Pure. Allowed (PS3.18 §10.6 QIDO-RS, §10.4 WADO-RS):
 * - GET/HEAD `/dicom-web/studies/{study}` and everything below it (series, metadata, instances, frames, rendered);
 * - GET/HEAD `/dicom-web/studies?...` whose only StudyInstanceUID match (`StudyInstanceUID` or `0020000D`) is `study`,
 *   which is the query OHIF sends first to load a study.
 * A study search without a StudyInstanceUID match (OHIF looks for the patient's other studies) is narrowed to the
 * token's study (status 200 here: the guard answers it with that narrower search). Any other DICOMweb read answers 404 (another study: nothing to
 * see for this token); any other method or path answers 401 (the token is no credential there).
 */
export function checkViewerUse(method: string, url: string, study: string, reach: ViewerReach = 'study'): ViewerUse {
  if (method !== 'GET' && method !== 'HEAD') return ELSEWHERE;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path !== '/dicom-web' && !path.startsWith('/dicom-web/')) return ELSEWHERE;
  // No percent-encoding, dot segments or empty segments: the path must be literally the study's.
  const segments = path.split('/').slice(2);
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('%'))) return OTHER_STUDY;
  if (segments[0] !== 'studies') return OTHER_STUDY;
  // A patient-reach token reads studies like any patient-context token: QIDO-RS and WADO-RS filter by its patient.
  if (reach === 'patient') return { allowed: true };
  if (segments.length >= 2) return segments[1] === study ? { allowed: true } : OTHER_STUDY;
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const matches = [...params.entries()].filter(([k]) => k === 'StudyInstanceUID' || k.toUpperCase() === '0020000D');
  if (matches.length === 0) return NO_OTHER_STUDIES;
  const uids = matches.flatMap(([, v]) => v.split(/[,\\]/));
  return uids.every((u) => u === study) ? { allowed: true } : OTHER_STUDY;
}

function unverifiedClaims(token: string): Record<string, unknown> | undefined {
  const payload = token.split('.')[1];
  if (!payload || payload.length > 8192) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the viewer-study claim of a compact JWT without verifying it (the resource server verifies). */
export function viewerStudyOf(token: string): string | undefined {
  const study = unverifiedClaims(token)?.[VIEWER_STUDY_CLAIM];
  return typeof study === 'string' ? study : undefined;
}

/** Reads the reach of a viewer token without verifying it: `patient` only when it says so, else `study`. */
export function viewerReachOf(token: string): ViewerReach {
  return unverifiedClaims(token)?.[VIEWER_REACH_CLAIM] === 'patient' ? 'patient' : 'study';
}

/** The bearer token of an Authorization header value, if it has one. */
export function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return m?.[1];
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
