/**
 * Loads N FHIR resources (100k at full scale) quickly and reproducibly: deterministic Patients (25 %), Practitioners
 * (5 %), Encounters (35 %) and ServiceRequests (35 %), written in batches straight into the resource, history and
 * search-index tables. The index rows and compartment owners are computed by the FHIR module's own pure code
 * (src/fhir/index-values.ts, `extractIndex` and `compartmentOf`), so searches see exactly what the API would have
 * written; only the per-resource transaction round trips are skipped (100k POSTs would take far longer than the run).
 */
import type { Encounter, Patient, Practitioner, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { type DatabasePool, sql } from 'slonik';
import { compartmentOf, extractIndex, type IndexValues } from '../src/fhir/index-values.ts';
import { pgTime } from '../src/fhir/repository-write.ts';
import { type FhirType, RESOURCES } from '../src/fhir/registry.ts';

const FAMILIES = ['Smith', 'Jones', 'Garcia', 'Müller', 'Nguyen', 'Rossi', 'Kowalski', 'Dubois', 'Tanaka', 'Olsen'];
const GIVEN = ['Anna', 'Ben', 'Chloé', 'David', 'Emma', 'Farid', 'Greta', 'Hugo', 'Ines', 'Jonas', 'Kira', 'Liam'];
const LOINC = [
  ['24725-4', 'CT Head'],
  ['24627-2', 'CT Chest'],
  ['36643-5', 'XR Chest'],
  ['24558-9', 'MR Brain'],
] as const;

export interface BulkPlan {
  patients: number;
  practitioners: number;
  encounters: number;
  orders: number;
}

export function planOf(total: number): BulkPlan {
  const patients = Math.round(total * 0.25);
  const practitioners = Math.round(total * 0.05);
  const encounters = Math.round(total * 0.35);
  return { patients, practitioners, encounters, orders: total - patients - practitioners - encounters };
}

const pad = (n: number) => String(n).padStart(7, '0');
export const bulkPatientId = (i: number) => `bp-${pad(i)}`;
export const bulkFamily = (i: number) => `${FAMILIES[i % FAMILIES.length]}${Math.floor(i / FAMILIES.length)}`;
const day = (i: number) => new Date(Date.UTC(2015, 0, 1) + (i % 3650) * 86_400_000).toISOString().slice(0, 10);

/** The i-th resource of each kind (pure, deterministic). */
export function bulkResource(type: FhirType, i: number, plan: BulkPlan, sys: { mrn: string; acc: string }): Resource {
  const patientRef = { reference: `Patient/${bulkPatientId(i % plan.patients)}` };
  switch (type) {
    case 'Patient':
      return {
        resourceType: 'Patient',
        id: bulkPatientId(i),
        identifier: [
          {
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
            system: sys.mrn,
            value: `BENCH-${pad(i)}`,
          },
        ],
        active: true,
        name: [{ family: bulkFamily(i), given: [GIVEN[i % GIVEN.length] as string] }],
        gender: i % 2 ? 'female' : 'male',
        birthDate: `19${40 + (i % 60)}-0${1 + (i % 9)}-1${i % 10}`,
      } satisfies Patient;
    case 'Practitioner':
      return {
        resourceType: 'Practitioner',
        id: `bpr-${pad(i)}`,
        identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: `9${pad(i)}` }],
        name: [{ family: bulkFamily(i + 7), given: [GIVEN[(i + 3) % GIVEN.length] as string], prefix: ['Dr.'] }],
      } satisfies Practitioner;
    case 'Encounter':
      return {
        resourceType: 'Encounter',
        id: `be-${pad(i)}`,
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: i % 3 ? 'AMB' : 'IMP' },
        subject: patientRef,
        period: { start: `${day(i)}T08:00:00Z`, end: `${day(i)}T09:30:00Z` },
      } satisfies Encounter;
    case 'ServiceRequest': {
      const [code, display] = LOINC[i % LOINC.length] as readonly [string, string];
      return {
        resourceType: 'ServiceRequest',
        id: `bo-${pad(i)}`,
        identifier: [
          {
            type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] },
            system: sys.acc,
            value: `BACC-${pad(i)}`,
          },
        ],
        status: i % 5 ? 'completed' : 'active',
        intent: 'order',
        code: { coding: [{ system: 'http://loinc.org', code, display }] },
        subject: patientRef,
        encounter: { reference: `Encounter/be-${pad(i % Math.max(1, plan.encounters))}` },
        requester: { reference: `Practitioner/bpr-${pad(i % Math.max(1, plan.practitioners))}` },
        authoredOn: `${day(i)}T08:15:00Z`,
      } satisfies ServiceRequest;
    }
    default:
      throw new Error(`no bulk generator for ${type}`);
  }
}

interface Row {
  type: FhirType;
  resource: Resource & { id: string };
  index: IndexValues;
  patientId: string | null;
}

async function insertBatch(db: DatabasePool, type: FhirType, rows: Row[], lastUpdated: string): Promise<void> {
  const table = RESOURCES[type].table;
  const data = rows.map((r) => ({
    id: r.resource.id,
    content: { ...r.resource, meta: { versionId: '1', lastUpdated } },
    patient_id: r.patientId,
    sort_date: r.index.sortDate ? pgTime(r.index.sortDate) : '-infinity',
    sort_string: r.index.sortString,
    mrn: type === 'Patient' ? ((r.resource as Patient).identifier?.[0]?.value ?? null) : null,
    acc: type === 'ServiceRequest' ? ((r.resource as ServiceRequest).identifier?.[0]?.value ?? null) : null,
  }));
  const json = sql.jsonb(data as never);
  await db.transaction(async (tx) => {
    const extra =
      type === 'Patient'
        ? sql.fragment`, mrn`
        : type === 'ServiceRequest'
          ? sql.fragment`, accession_number`
          : sql.fragment``;
    const extraSel =
      type === 'Patient' ? sql.fragment`, t.mrn` : type === 'ServiceRequest' ? sql.fragment`, t.acc` : sql.fragment``;
    await tx.query(sql.unsafe`
      INSERT INTO ${sql.identifier([table])} (id, version_id, last_updated, deleted, content, patient_id, sort_date, sort_string${extra})
      SELECT t.id, 1, ${lastUpdated}::timestamptz, false, t.content, t.patient_id, t.sort_date, t.sort_string${extraSel}
      FROM jsonb_to_recordset(${json}) AS t(id text, content jsonb, patient_id text, sort_date timestamptz,
        sort_string text, mrn text, acc text)`);
    await tx.query(sql.unsafe`
      INSERT INTO fhir_history (resource_type, id, version_id, last_updated, deleted, method, content, patient_id)
      SELECT ${type}, t.id, 1, ${lastUpdated}::timestamptz, false, 'POST', t.content, t.patient_id
      FROM jsonb_to_recordset(${json}) AS t(id text, content jsonb, patient_id text)`);
    const col = <T>(f: (r: Row) => T[]) => rows.flatMap((r) => f(r).map((x) => [r.resource.id, x] as const));
    const tokens = col((r) => r.index.tokens);
    const strings = col((r) => r.index.strings);
    const dates = col((r) => r.index.dates);
    const refs = col((r) => r.index.references);
    const types = (n: number) => Array.from({ length: n }, () => type);
    if (tokens.length) {
      await tx.query(sql.unsafe`INSERT INTO search_token (resource_type, resource_id, code, system, value)
        SELECT * FROM unnest(${sql.array(types(tokens.length), 'text')}, ${sql.array(
          tokens.map((t) => t[0]),
          'text',
        )},
          ${sql.array(
            tokens.map((t) => t[1].code),
            'text',
          )}, ${sql.array(
            tokens.map((t) => t[1].system),
            'text',
          )},
          ${sql.array(
            tokens.map((t) => t[1].value),
            'text',
          )})`);
    }
    if (strings.length) {
      await tx.query(sql.unsafe`INSERT INTO search_string (resource_type, resource_id, code, value, exact)
        SELECT * FROM unnest(${sql.array(types(strings.length), 'text')}, ${sql.array(
          strings.map((t) => t[0]),
          'text',
        )},
          ${sql.array(
            strings.map((t) => t[1].code),
            'text',
          )}, ${sql.array(
            strings.map((t) => t[1].value),
            'text',
          )},
          ${sql.array(
            strings.map((t) => t[1].exact),
            'text',
          )})`);
    }
    if (dates.length) {
      await tx.query(sql.unsafe`INSERT INTO search_date (resource_type, resource_id, code, low, high)
        SELECT * FROM unnest(${sql.array(types(dates.length), 'text')}, ${sql.array(
          dates.map((t) => t[0]),
          'text',
        )},
          ${sql.array(
            dates.map((t) => t[1].code),
            'text',
          )}, ${sql.array(
            dates.map((t) => pgTime(t[1].low)),
            'timestamptz',
          )},
          ${sql.array(
            dates.map((t) => pgTime(t[1].high)),
            'timestamptz',
          )})`);
    }
    if (refs.length) {
      await tx.query(sql.unsafe`INSERT INTO search_reference (resource_type, resource_id, code, target_type, target_id)
        SELECT * FROM unnest(${sql.array(types(refs.length), 'text')}, ${sql.array(
          refs.map((t) => t[0]),
          'text',
        )},
          ${sql.array(
            refs.map((t) => t[1].code),
            'text',
          )}, ${sql.array(
            refs.map((t) => t[1].targetType),
            'text',
          )},
          ${sql.array(
            refs.map((t) => t[1].targetId),
            'text',
          )})`);
    }
  });
}

/** Inserts the plan's resources in batches of 2000 and runs ANALYZE; returns the counts. */
export async function loadFhirBulk(
  db: DatabasePool,
  total: number,
  opts: { fhirBase: string; mrnSystem: string; accessionSystem: string; log: (s: string) => void },
): Promise<BulkPlan> {
  const plan = planOf(total);
  const lastUpdated = new Date().toISOString();
  const sys = { mrn: opts.mrnSystem, acc: opts.accessionSystem };
  const kinds: [FhirType, number][] = [
    ['Patient', plan.patients],
    ['Practitioner', plan.practitioners],
    ['Encounter', plan.encounters],
    ['ServiceRequest', plan.orders],
  ];
  const t0 = Date.now();
  for (const [type, count] of kinds) {
    for (let start = 0; start < count; start += 2000) {
      const rows: Row[] = [];
      for (let i = start; i < Math.min(count, start + 2000); i++) {
        const resource = bulkResource(type, i, plan, sys) as Resource & { id: string };
        const index = extractIndex(type, resource, opts.fhirBase);
        rows.push({ type, resource, index, patientId: compartmentOf(type, resource.id, index) });
      }
      await insertBatch(db, type, rows, lastUpdated);
    }
    opts.log(`fhir: ${count} ${type} loaded (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
  await db.query(sql.unsafe`ANALYZE`);
  return plan;
}
