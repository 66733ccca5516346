/**
 * Viewer sessions: a viewer link's token is renewed before it expires, for as long as the user reads, without ever
 * widening it. A renewal keeps the user (`sub`), the patient, the study, the reach and the session id of the token it
 * replaces, and is granted only after the user's current rights are checked again (as RFC 6749 §6 asks of a refresh:
 * the grant must still hold):
 * - the user is active and the token was issued after their `tokens_not_before` (deactivation, "sign out everywhere");
 * - the token is not on the denylist;
 * - the user still reaches the token's patient (src/auth/patient-reach.ts: a revoked grant, a moved order, a removed
 *   role end it) and the study still belongs to that patient;
 * - the session was not idle longer than the configured idle time;
 * - the token was not renewed before (each token renews once, like a rotated refresh token).
 * Database look-ups only; the routes are in session-routes.ts.
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';
import { type DatabasePool, sql } from 'slonik';
import { reaches, userReach } from '../auth/patient-reach.ts';
import { issuedAfter } from '../auth/resolve-caller.ts';
import { isRevoked, userById } from '../auth/store.ts';
import {
  isStudyUid,
  VIEWER_CLIENT_ID,
  VIEWER_REACH_CLAIM,
  VIEWER_SESSION_CLAIM,
  VIEWER_STUDY_CLAIM,
  type ViewerReach,
} from '../auth/viewer-token.ts';

/** The claims of a verified viewer token that a renewal carries over. */
export interface ViewerClaims {
  readonly sub: string;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly patient: string;
  readonly study: string;
  readonly reach: ViewerReach;
  readonly sessionId: string;
  readonly fhirUser?: string | undefined;
}

/** Why a viewer session cannot go on, with a code the viewer turns into words (ohif-config/app-config.js). */
export class ViewerSessionError extends EhrError {
  override readonly code: ErrorCode = 'EHR_VIEWER_SESSION';
  override name = 'ViewerSessionError';
  /** The answer's `error` member, which the viewer turns into words. */
  readonly error: 'not_a_viewer_token' | 'revoked' | 'idle' | 'already_renewed' | 'study_not_available';
  constructor(status: 401 | 403 | 404, error: ViewerSessionError['error'], message: string) {
    super(message);
    this.httpStatus = status;
    this.error = error;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The viewer claims of a token's claim set, or undefined when it is not a viewer token. Pure. */
export function viewerClaimsOf(claims: Record<string, unknown>): ViewerClaims | undefined {
  const sub = str(claims['sub']);
  const jti = str(claims['jti']);
  const patient = str(claims['patient']);
  const study = str(claims[VIEWER_STUDY_CLAIM]);
  const { iat, exp } = claims;
  if (claims['client_id'] !== VIEWER_CLIENT_ID || !sub || !jti || !patient || !study || !isStudyUid(study)) {
    return undefined;
  }
  if (typeof iat !== 'number' || typeof exp !== 'number') return undefined;
  return {
    sub,
    jti,
    iat,
    exp,
    patient,
    study,
    reach: claims[VIEWER_REACH_CLAIM] === 'patient' ? 'patient' : 'study',
    // A token from before sessions existed starts one named after itself.
    sessionId: str(claims[VIEWER_SESSION_CLAIM]) ?? jti,
    fhirUser: str(claims['fhirUser']),
  };
}

/** Refuses a renewal after `idleS` seconds without activity (as the viewer reports it), or undefined. Pure. */
export function idleRefusal(idleS: unknown, idleTimeoutS: number): ViewerSessionError | undefined {
  if (typeof idleS !== 'number' || !Number.isFinite(idleS) || idleS < idleTimeoutS) return undefined;
  return new ViewerSessionError(
    401,
    'idle',
    `the viewer was idle for more than ${Math.round(idleTimeoutS / 60)} minutes: open the study again`,
  );
}

/** The patient each study belongs to (null: not indexed, deleted, or not linked to a patient). */
export async function studyPatients(db: DatabasePool, uids: readonly string[]): Promise<Map<string, string | null>> {
  const valid = uids.filter(isStudyUid);
  const out = new Map<string, string | null>(uids.map((u) => [u, null]));
  if (valid.length === 0) return out;
  const rows = (await db.any(sql.unsafe`
    SELECT study_instance_uid, patient_id FROM imaging_studies
    WHERE study_instance_uid = ANY(${sql.array(valid, 'text')}) AND NOT deleted`)) as readonly {
    study_instance_uid: string;
    patient_id: string | null;
  }[];
  for (const r of rows) out.set(r.study_instance_uid, r.patient_id);
  return out;
}

/**
 * Which of `uids` a viewer token may open: its own study (while it is still its patient's), and for a patient-reach
 * token any study of the same patient. The user's reach is checked by {@link recheckRights}.
 */
export async function availableStudies(
  db: DatabasePool,
  c: ViewerClaims,
  uids: readonly string[],
): Promise<Map<string, boolean>> {
  const patients = await studyPatients(db, uids);
  return new Map(
    uids.map((u) => [u, patients.get(u) === c.patient && (c.reach === 'patient' || u === c.study)] as const),
  );
}

/** Checks the user's current rights behind a viewer token, straight from the database (no cache). */
export async function recheckRights(db: DatabasePool, c: ViewerClaims): Promise<void> {
  const user = await userById(db, c.sub);
  if (!user?.active) throw new ViewerSessionError(401, 'revoked', 'the user is no longer active');
  if (!issuedAfter(c.iat, user.tokensNotBefore) || (await isRevoked(db, c.jti))) {
    throw new ViewerSessionError(401, 'revoked', "the user's sessions were ended");
  }
  if (!reaches(await userReach(db, user), c.patient)) {
    throw new ViewerSessionError(401, 'revoked', 'the user no longer has access to this patient');
  }
  const own = await studyPatients(db, [c.study]);
  if (own.get(c.study) !== c.patient) {
    throw new ViewerSessionError(404, 'study_not_available', 'the study is no longer filed under this patient');
  }
}

/**
 * Uses a viewer token's one renewal: true the first time, false after (a replayed token). Recorded with the token's
 * expiry in the table of single-use JWT ids, where expired rows are purged.
 */
export async function claimRenewal(db: DatabasePool, c: ViewerClaims): Promise<boolean> {
  const row = await db.maybeOne(sql.unsafe`
    INSERT INTO client_assertion_jtis (client_id, jti, expires_at)
    VALUES ('@viewer-renewal', ${c.jti}, to_timestamp(${c.exp}))
    ON CONFLICT DO NOTHING RETURNING jti`);
  return row !== null;
}

/**
 * The patient's most recent study before `study` (by the ImagingStudy's `started`, from StudyDate/StudyTime), for a
 * viewer link that opens the study next to its prior; undefined when there is none.
 */
export async function latestPrior(db: DatabasePool, patientId: string, study: string): Promise<string | undefined> {
  const uid = await db.maybeOneFirst(sql.unsafe`
    SELECT p.study_instance_uid FROM imaging_studies p
    JOIN imaging_studies c ON c.study_instance_uid = ${study} AND c.patient_id = p.patient_id
    WHERE p.patient_id = ${patientId} AND NOT p.deleted AND p.study_instance_uid IS NOT NULL
      AND p.study_instance_uid <> c.study_instance_uid AND p.sort_date < c.sort_date
    ORDER BY p.sort_date DESC, p.last_updated DESC LIMIT 1`);
  return typeof uid === 'string' && isStudyUid(uid) ? uid : undefined;
}
