/**
 * Set-up work of the benchmark done through the real app built in-process (never listening): benchmark users, their
 * patient grants and real access tokens minted with the built-in server's signing key (the `bin/ehr token` path),
 * and EHR records created through the FHIR API (`inject`). None of this is timed.
 */
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { buildApp } from '../src/app.ts';
import { mintLocalToken } from '../src/auth/local-token.ts';
import { loadConfig } from '../src/config/load-config.ts';

export const USERS = {
  admin: { username: 'bench-admin', roles: ['admin'], scope: 'user/*.cruds' },
  doctor: { username: 'bench-doctor', roles: ['doctor'], scope: 'user/*.rs' },
  patient: { username: 'bench-patient', roles: [] as string[], scope: 'launch/patient patient/*.rs' },
} as const;
export type Caller = keyof typeof USERS;

export interface Admin {
  app: FastifyInstance;
  /** A fresh-enough bearer token of a benchmark caller (re-minted after 20 minutes). */
  token(who: Caller): Promise<string>;
  setPatientOfToken(patientId: string): void;
  grant(username: string, patientIds: readonly string[]): Promise<void>;
  fhirCreate<T extends { resourceType: string; id?: string }>(body: T): Promise<T>;
  close(): Promise<void>;
}

/** The facade's environment → its config, quiet, with the change feed off; then the app, ready but not listening. */
export async function startAdmin(env: Record<string, string>): Promise<Admin> {
  const config = loadConfig({ ...env, EHR_LOG_LEVEL: 'silent', EHR_CHANGE_FEED_ENABLED: 'false' });
  const app = await buildApp(config);
  await app.ready();
  const ids = new Map<string, string>();
  for (const u of Object.values(USERS)) {
    const row = (await app.db.one(sql.unsafe`
      INSERT INTO users (username, display_name, roles)
      VALUES (${u.username}, ${u.username}, ${sql.array([...u.roles], 'text')})
      ON CONFLICT (username) DO UPDATE SET roles = EXCLUDED.roles, active = true
      RETURNING id`)) as { id: string };
    ids.set(u.username, row.id);
  }
  let patientOfToken: string | undefined;
  const cache = new Map<Caller, { token: string; at: number }>();

  const token = async (who: Caller): Promise<string> => {
    const hit = cache.get(who);
    if (hit && Date.now() - hit.at < 20 * 60_000) return hit.token;
    const u = USERS[who];
    const minted = await mintLocalToken(app.db, app.authMint, {
      username: u.username,
      scope: u.scope,
      ...(who === 'patient' && patientOfToken ? { patient: patientOfToken } : {}),
      ttlS: 3600,
    });
    cache.set(who, { token: minted.token, at: Date.now() });
    return minted.token;
  };

  const grant = async (username: string, patientIds: readonly string[]) => {
    const adminId = ids.get(USERS.admin.username);
    await app.db.query(sql.unsafe`
      INSERT INTO patient_grants (user_id, patient_id, granted_by, reason)
      SELECT u.id, p, ${adminId ?? null}, 'benchmark'
      FROM users u, unnest(${sql.array([...patientIds], 'text')}) AS p
      WHERE u.username = ${username}
      ON CONFLICT DO NOTHING`);
  };

  const fhirCreate = async <T extends { resourceType: string; id?: string }>(body: T): Promise<T> => {
    const res = await app.inject({
      method: 'POST',
      url: `/fhir/${body.resourceType}`,
      headers: { authorization: `Bearer ${await token('admin')}`, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(body),
    });
    if (res.statusCode !== 201) throw new Error(`creating ${body.resourceType}: ${res.statusCode} ${res.body}`);
    return res.json() as T;
  };

  return {
    app,
    token,
    setPatientOfToken: (id) => {
      patientOfToken = id;
      cache.delete('patient');
    },
    grant,
    fhirCreate,
    close: () => app.close(),
  };
}

export interface Booking {
  patientId: string;
  mrn: string;
  orders: { id: string; accession: string }[];
}

/** A patient (MRN allocated by the server) and `orders` active CT orders for it (accessions allocated). */
export async function bookPatient(admin: Admin, name: string, orders: number): Promise<Booking> {
  const p = await admin.fhirCreate<Patient>({
    resourceType: 'Patient',
    name: [{ family: name, given: ['Bench'] }],
    birthDate: '1970-01-01',
    gender: 'other',
  });
  const mrn = p.identifier?.[0]?.value;
  if (!p.id || !mrn) throw new Error('the server did not allocate an MRN');
  const out: Booking = { patientId: p.id, mrn, orders: [] };
  for (let i = 0; i < orders; i++) {
    const o = await admin.fhirCreate<ServiceRequest>({
      resourceType: 'ServiceRequest',
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24725-4', display: 'CT Head' }] },
      subject: { reference: `Patient/${p.id}` },
    });
    const accession = o.identifier?.[0]?.value;
    if (!o.id || !accession) throw new Error('the server did not allocate an accession number');
    out.orders.push({ id: o.id, accession });
  }
  return out;
}
