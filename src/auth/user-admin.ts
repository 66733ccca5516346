/**
 * Changes to users and their patient grants (and the rules of a patient login), shared by `bin/ehr user` and tests (the same code path). Each change is
 * committed with NOTIFY triggers (auth-change-listener.ts), which tell every facade process to drop its caller cache, so the next
 * request of any token of the user is resolved against the new state.
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';
import { type DatabasePool, sql } from 'slonik';
import { PATIENT_ROLE } from './patient-user.ts';
import { revokeUserTokens } from './server/grant-store.ts';

/** A new user that breaks a rule: `status` 400 for its shape, 422 for a patient that does not exist. */
export class UserSpecError extends EhrError {
  override readonly code: ErrorCode = 'EHR_USER_SPEC';
  override name = 'UserSpecError';
  constructor(status: 400 | 422, message: string) {
    super(message);
    this.httpStatus = status;
  }
}

/** The fields of a new user the patient-login rules read. */
export interface NewUserLink {
  readonly roles: readonly string[];
  readonly patient?: string | undefined;
  readonly practitionerId?: string | undefined;
  readonly department?: string | undefined;
}

/**
 * The rules of a patient login (the users table checks them too): the `patient` role alone, naming the Patient it stands
 * for, without practitioner or department; no other user names a patient. Pure; undefined when the user keeps them.
 */
export function patientLoginProblem(u: NewUserLink): string | undefined {
  const isPatient = u.roles.includes(PATIENT_ROLE);
  if (!isPatient) return u.patient === undefined ? undefined : 'only a patient login names a patient';
  if (u.roles.length > 1) return 'a patient login has the patient role only';
  if (u.patient === undefined) return 'a patient login needs the patient it stands for';
  if (u.practitionerId !== undefined || u.department !== undefined) {
    return 'a patient login has no practitioner or department';
  }
  return undefined;
}

/** Checks a new user against the patient-login rules and that its patient exists; throws {@link UserSpecError}. */
export async function checkNewUserLink(db: DatabasePool, u: NewUserLink): Promise<void> {
  const problem = patientLoginProblem(u);
  if (problem) throw new UserSpecError(400, problem);
  if (u.patient === undefined) return;
  const found = await db.maybeOne(sql.unsafe`SELECT 1 AS x FROM patients WHERE id = ${u.patient} AND NOT deleted`);
  if (found === null) throw new UserSpecError(422, `no patient ${u.patient}`);
}

/** Revokes the user's live grant to a patient (the row stays: who, when). Returns false when there was none. */
export async function revokeGrant(db: DatabasePool, userId: string, patientId: string, byId: string): Promise<boolean> {
  const r = await db.query(sql.unsafe`
    UPDATE patient_grants SET revoked_at = now(), revoked_by = ${byId}
    WHERE user_id = ${userId} AND patient_id = ${patientId} AND revoked_at IS NULL`);
  return r.rowCount > 0;
}

/**
 * Deactivates a user and ends every token they hold: the resource server refuses any token of an inactive user and,
 * through `tokens_not_before` (set by a trigger on `users`, which also revokes their refresh tokens), any token
 * issued before now (viewer links, development and external tokens included); their recorded access tokens go on the
 * denylist as well. Reactivating the user revives none of them.
 * Returns false when the user was already inactive.
 */
export async function deactivateUser(db: DatabasePool, userId: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const r = await tx.query(sql.unsafe`
      UPDATE users SET active = false, updated_at = now() WHERE id = ${userId} AND active`);
    await revokeUserTokens(tx, userId);
    return r.rowCount > 0;
  });
}

/** Reactivates a user (their earlier tokens stay revoked). Returns false when the user was already active. */
export async function activateUser(db: DatabasePool, userId: string): Promise<boolean> {
  const r = await db.query(sql.unsafe`
    UPDATE users SET active = true, updated_at = now() WHERE id = ${userId} AND NOT active`);
  return r.rowCount > 0;
}

/**
 * Replaces a user's roles. Takes effect on the user's next request with any token they hold (roles are read per
 * request, and the change drops every process's caller cache). Returns the roles before and whether they changed.
 */
export async function setUserRoles(
  db: DatabasePool,
  userId: string,
  roles: readonly string[],
): Promise<{ before: string[]; changed: boolean }> {
  return db.transaction(async (tx) => {
    const row = (await tx.one(sql.unsafe`
      SELECT roles, patient_id, practitioner_id, department FROM users WHERE id = ${userId} FOR UPDATE`)) as {
      roles: string[];
      patient_id: string | null;
      practitioner_id: string | null;
      department: string | null;
    };
    const before = row.roles;
    // The patient role comes and goes with the patient link, which only a new login sets: refuse it here.
    const problem = patientLoginProblem({
      roles,
      patient: row.patient_id ?? undefined,
      practitionerId: row.practitioner_id ?? undefined,
      department: row.department ?? undefined,
    });
    if (problem) throw new UserSpecError(422, problem);
    const same = before.length === roles.length && before.every((r) => roles.includes(r));
    if (!same)
      await tx.query(sql.unsafe`
        UPDATE users SET roles = ${sql.array([...roles], 'text')}, updated_at = now() WHERE id = ${userId}`);
    return { before, changed: !same };
  });
}
