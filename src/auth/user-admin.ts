/**
 * Changes to users and their patient grants, shared by `bin/ehr user` and tests (the same code path). Each change is
 * committed with NOTIFY triggers (auth-change-listener.ts), which tell every facade process to drop its caller cache, so the next
 * request of any token of the user is resolved against the new state.
 */
import { type DatabasePool, sql } from 'slonik';
import { revokeUserTokens } from './server/grant-store.ts';

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
