/**
 * Resolves, once per request, the patient sets the pure policy consumes. Only the sources the caller's roles use are
 * queried. All queries use the slonik `sql` tag.
 *
 * - granted: live rows of `patient_grants` (not revoked, not expired).
 * - self: the Patient a patient login stands for (`users.patient_id`).
 * - imaging-assigned: patients of imaging orders (`orders`, the FHIR ServiceRequest table) whose
 *   `performer` references the user's Practitioner or the user's department (`users.department` holds a reference such
 *   as `Organization/radiology` or `HealthcareService/ct`). Until that table exists the set is empty (deny by default).
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientSource } from './policy.ts';

export interface UserRecord {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
  readonly practitionerId: string | null;
  readonly department: string | null;
  /** The Patient a patient login stands for (role `patient`), else null. */
  readonly patientId?: string | null;
  readonly active: boolean;
  /** Epoch seconds: tokens of the user issued at or before it are refused (set on deactivation). */
  readonly tokensNotBefore?: number | null;
}

let ordersTableSeen = false;

async function ordersTableExists(db: DatabasePool): Promise<boolean> {
  if (ordersTableSeen) return true;
  const row = (await db.one(sql.unsafe`SELECT to_regclass('orders') IS NOT NULL AS present`)) as { present: boolean };
  ordersTableSeen = row.present;
  return row.present;
}

export async function grantedPatients(db: DatabasePool, userId: string): Promise<string[]> {
  const rows = (await db.any(sql.unsafe`
    SELECT DISTINCT patient_id FROM patient_grants
    WHERE user_id = ${userId} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
    ORDER BY patient_id`)) as readonly { patient_id: string }[];
  return rows.map((r) => r.patient_id);
}

export async function imagingAssignedPatients(db: DatabasePool, user: UserRecord): Promise<string[]> {
  const refs = [
    ...(user.practitionerId ? [`Practitioner/${user.practitionerId}`] : []),
    ...(user.department ? [user.department] : []),
  ];
  if (refs.length === 0 || !(await ordersTableExists(db))) return [];
  const rows = (await db.any(sql.unsafe`
    SELECT DISTINCT o.patient_id FROM orders o
    WHERE o.patient_id IS NOT NULL AND NOT o.deleted
      AND EXISTS (
        SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(o.content->'performer') = 'array'
                                                THEN o.content->'performer' ELSE '[]'::jsonb END) AS p(ref)
        WHERE p.ref->>'reference' = ANY(${sql.array(refs, 'text')}))
    ORDER BY o.patient_id`)) as readonly { patient_id: string }[];
  return rows.map((r) => String(r.patient_id));
}

/** The user's patient sets for the given sources. */
export async function resolvePatientSets(
  db: DatabasePool,
  user: UserRecord,
  sources: readonly Exclude<PatientSource, 'all'>[],
): Promise<Partial<Record<Exclude<PatientSource, 'all'>, readonly string[]>>> {
  const out: Partial<Record<Exclude<PatientSource, 'all'>, readonly string[]>> = {};
  for (const s of sources) {
    if (s === 'self') out[s] = user.patientId ? [user.patientId] : [];
    else out[s] = s === 'granted' ? await grantedPatients(db, user.id) : await imagingAssignedPatients(db, user);
  }
  return out;
}
