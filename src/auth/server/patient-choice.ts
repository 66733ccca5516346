/**
 * The patients a user may pick for `launch/patient`: exactly those the policy lets the user read as `Patient` through
 * their roles (so an auditor can pick none, a doctor only granted patients). Labels come from the FHIR `patients`
 * table when it exists.
 */
import { type DatabasePool, sql } from 'slonik';
import type { PatientFilter } from '../access.ts';
import { userReach } from '../patient-reach.ts';
import type { UserRecord } from '../patient-sets.ts';
import type { PatientChoice } from './pages.ts';

export const PATIENT_ID = /^[A-Za-z0-9.-]{1,64}$/;

export async function selectablePatients(db: DatabasePool, user: UserRecord): Promise<PatientFilter> {
  return userReach(db, user);
}

async function patientsTable(db: DatabasePool): Promise<boolean> {
  const r = (await db.one(sql.unsafe`SELECT to_regclass('patients') IS NOT NULL AS present`)) as { present: boolean };
  return r.present;
}

function label(id: string, content: unknown): string {
  const name = (content as { name?: { family?: string; given?: string[]; text?: string }[] } | null)?.name?.[0];
  const text = name?.text ?? [...(name?.given ?? []), name?.family ?? ''].join(' ').trim();
  return text ? `${text} (${id})` : id;
}

/** Choices to show: the given ids (or the first 100 patients when the user may see all). */
export async function patientChoices(db: DatabasePool, filter: PatientFilter): Promise<PatientChoice[]> {
  if (!(await patientsTable(db))) return filter.all ? [] : filter.patientIds.map((id) => ({ id, label: id }));
  const rows = (await db.any(
    filter.all
      ? sql.unsafe`SELECT id::text AS id, content FROM patients WHERE NOT deleted ORDER BY id LIMIT 100`
      : sql.unsafe`SELECT id::text AS id, content FROM patients
                   WHERE NOT deleted AND id::text = ANY(${sql.array([...filter.patientIds], 'text')}) ORDER BY id`,
  )) as readonly { id: string; content: unknown }[];
  const known = new Map(rows.map((r) => [r.id, label(r.id, r.content)]));
  const ids = filter.all ? [...known.keys()] : filter.patientIds;
  return ids.map((id) => ({ id, label: known.get(id) ?? id }));
}

/** Is `patientId` a patient the user may pick (and, once the FHIR tables exist, a real one)? */
export async function maySelect(db: DatabasePool, filter: PatientFilter, patientId: string): Promise<boolean> {
  if (!PATIENT_ID.test(patientId)) return false;
  if (!filter.all && !filter.patientIds.includes(patientId)) return false;
  if (!(await patientsTable(db))) return true;
  const r = await db.maybeOne(sql.unsafe`SELECT 1 AS x FROM patients WHERE NOT deleted AND id::text = ${patientId}`);
  return r !== null;
}
