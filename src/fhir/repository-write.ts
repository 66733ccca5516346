import type { Identifier, Resource } from '@medplum/fhirtypes';
import { type CommonQueryMethods, type FragmentSqlToken, sql } from 'slonik';
import { UnprocessableError } from './errors.ts';
import { DICOM_UID_SYSTEM, formatIdentifier, studyUidFromIdentifier, V2_0203 } from './identifiers.ts';
import { type IndexValues, parseLocalReference } from './index-values.ts';
import { type FhirType, isFhirType, RESOURCES } from './registry.ts';
import { collectReferences } from './validate.ts';

/** Identifier settings from the configuration. */
export interface IdentifierConfig {
  fhirMrnSystem: string;
  fhirMrnFormat: string;
  fhirAccessionSystem: string;
  fhirAccessionFormat: string;
}

/** The bridge-key columns of a row (only the ones its table has). */
export interface BridgeColumns {
  mrn?: string | null;
  accession_number?: string | null;
  study_instance_uid?: string | null;
  orthanc_study_id?: string | null;
  number_of_images?: number | null;
  uploaded_at?: string | null;
}

/** The bridge-key columns each table has. */
export const BRIDGE_COLUMNS: Partial<Record<FhirType, readonly (keyof BridgeColumns)[]>> = {
  Patient: ['mrn'],
  ServiceRequest: ['accession_number', 'study_instance_uid', 'orthanc_study_id', 'number_of_images', 'uploaded_at'],
  ImagingStudy: ['study_instance_uid', 'orthanc_study_id'],
};
/** Unique constraints → 409 message and element. */
export const CONFLICTS: Record<string, [string, string]> = {
  patients_mrn_key: ['MRN already belongs to another Patient', 'Patient.identifier'],
  orders_accession_number_key: [
    'accession number already belongs to another ServiceRequest',
    'ServiceRequest.identifier',
  ],
  orders_study_instance_uid_key: ['study already linked to another order', 'ServiceRequest'],
  orders_orthanc_study_id_key: ['study already linked to another order', 'ServiceRequest'],
  imaging_studies_study_instance_uid_key: [
    'Study Instance UID already belongs to another ImagingStudy',
    'ImagingStudy.identifier',
  ],
  imaging_studies_orthanc_study_id_key: ['Orthanc study already belongs to another ImagingStudy', 'ImagingStudy'],
};

/**
 * Stand-in value while a write is validated (`dryRun`): the sequence is only touched once everything else passed,
 * so a rejected write does not burn an MRN or accession number.
 */
export const PENDING = 'pending-allocation';

const ACSN_TYPE = { coding: [{ system: V2_0203, code: 'ACSN' }] };
const MR_TYPE = { coding: [{ system: V2_0203, code: 'MR' }] };

async function allocate(
  conn: CommonQueryMethods,
  sequence: 'mrn_seq' | 'accession_seq',
  format: string,
  table: string,
  column: string,
): Promise<string> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const row = (await conn.one(sql.unsafe`SELECT nextval(${sequence}::regclass)::text AS n`)) as { n: string };
    const value = formatIdentifier(format, BigInt(row.n), new Date());
    const taken = await conn.maybeOne(
      sql.unsafe`SELECT 1 FROM ${sql.identifier([table])} WHERE ${sql.identifier([column])} = ${value}`,
    );
    if (!taken) return value;
  }
  throw new Error(`could not allocate a free ${column}`);
}

/**
 * Server-assigned business identifiers and the bridge keys they feed. A Patient without an MRN (in the configured
 * system) keeps its previous MRN on update or gets a new one from `mrn_seq`; likewise a ServiceRequest's accession
 * (type ACSN, https://terminology.hl7.org/CodeSystem-v2-0203.html). ImagingStudy's Study Instance UID comes from its
 * `urn:dicom:uid` identifier.
 */
export async function assignIdentifiers(
  conn: CommonQueryMethods,
  type: FhirType,
  resource: Resource,
  current: BridgeColumns | null,
  cfg: IdentifierConfig,
  dryRun = false,
): Promise<BridgeColumns> {
  const r = resource as Resource & { identifier?: Identifier[] };
  if (type === 'Patient') {
    let mrn = r.identifier?.find((i) => i.system === cfg.fhirMrnSystem);
    if (!mrn) {
      const value =
        current?.mrn ?? (dryRun ? PENDING : await allocate(conn, 'mrn_seq', cfg.fhirMrnFormat, 'patients', 'mrn'));
      mrn = { use: 'usual', type: MR_TYPE, system: cfg.fhirMrnSystem, value };
      r.identifier = [...(r.identifier ?? []), mrn];
    }
    return { mrn: mrn.value ?? null };
  }
  if (type === 'ServiceRequest') {
    let acc = r.identifier?.find((i) => i.system === cfg.fhirAccessionSystem);
    if (!acc) {
      const value =
        current?.accession_number ??
        (dryRun
          ? PENDING
          : await allocate(conn, 'accession_seq', cfg.fhirAccessionFormat, 'orders', 'accession_number'));
      acc = { use: 'usual', type: ACSN_TYPE, system: cfg.fhirAccessionSystem, value };
      r.identifier = [...(r.identifier ?? []), acc];
    } else if (!acc.type) {
      acc.type = ACSN_TYPE;
    }
    return {
      accession_number: acc.value ?? null,
      study_instance_uid: current?.study_instance_uid ?? null,
      orthanc_study_id: current?.orthanc_study_id ?? null,
      number_of_images: current?.number_of_images ?? null,
      uploaded_at: current?.uploaded_at ?? null,
    };
  }
  if (type === 'ImagingStudy') {
    const uid = r.identifier?.find((i) => i.system === DICOM_UID_SYSTEM)?.value;
    return {
      study_instance_uid: uid ? studyUidFromIdentifier(uid) : null,
      orthanc_study_id: current?.orthanc_study_id ?? null,
    };
  }
  return {};
}

/**
 * Checks that every reference resolves (https://hl7.org/fhir/R4/references.html): relative references (and absolute
 * ones under our own base) must name an existing, not deleted resource of a type we serve that the caller may
 * see; contained (`#id`) and external absolute URLs are accepted; anything else is a 422 naming the element.
 */
export async function resolveReferences(
  conn: CommonQueryMethods,
  type: FhirType,
  id: string,
  resource: Resource,
  fhirBase: string,
  scope: (type: FhirType) => FragmentSqlToken,
): Promise<void> {
  const wanted = new Map<FhirType, Map<string, string>>();
  for (const { path, reference } of collectReferences(resource, type)) {
    if (reference.startsWith('#')) continue;
    if (/^https?:\/\//.test(reference) && !reference.startsWith(`${fhirBase}/`)) continue;
    const local = parseLocalReference(reference, fhirBase);
    if (!local) throw new UnprocessableError(`reference ${JSON.stringify(reference)} cannot be resolved`, [path]);
    const [targetType, targetId] = local;
    if (!isFhirType(targetType)) {
      throw new UnprocessableError(`reference ${reference} cannot be resolved: ${targetType} is not served here`, [
        path,
      ]);
    }
    if (targetType === type && targetId === id) continue;
    if (!wanted.has(targetType)) wanted.set(targetType, new Map());
    wanted.get(targetType)?.set(targetId, path);
  }
  for (const [targetType, ids] of wanted) {
    const rows = (await conn.any(
      sql.unsafe`SELECT r.id FROM ${sql.identifier([RESOURCES[targetType].table])} r
                 WHERE r.id = ANY(${sql.array([...ids.keys()], 'text')}) AND NOT r.deleted AND ${scope(targetType)}`,
    )) as readonly { id: string }[];
    const found = new Set(rows.map((row) => row.id));
    for (const [targetId, path] of ids) {
      if (!found.has(targetId)) {
        throw new UnprocessableError(`reference ${targetType}/${targetId} does not resolve`, [path]);
      }
    }
  }
}

/** A Date as a PostgreSQL timestamptz literal; the open ends of a Period become ±infinity. */
export function pgTime(d: Date): string {
  const t = d.getTime();
  if (t <= -8e15) return '-infinity';
  if (t >= 8e15) return 'infinity';
  return d.toISOString();
}

/** Replaces a resource's search index rows (delete + bulk insert with unnest; all values bound). */
export async function writeIndex(conn: CommonQueryMethods, type: FhirType, id: string, index: IndexValues | null) {
  for (const t of ['search_token', 'search_string', 'search_date', 'search_reference']) {
    await conn.query(
      sql.unsafe`DELETE FROM ${sql.identifier([t])} WHERE resource_id = ${id} AND resource_type = ${type}`,
    );
  }
  if (!index) return;
  const n = (len: number) => Array.from({ length: len }, () => type);
  const m = (len: number) => Array.from({ length: len }, () => id);
  if (index.tokens.length) {
    const t = index.tokens;
    await conn.query(sql.unsafe`INSERT INTO search_token (resource_type, resource_id, code, system, value)
      SELECT * FROM unnest(${sql.array(n(t.length), 'text')}, ${sql.array(m(t.length), 'text')},
        ${sql.array(
          t.map((x) => x.code),
          'text',
        )}, ${sql.array(
          t.map((x) => x.system),
          'text',
        )},
        ${sql.array(
          t.map((x) => x.value),
          'text',
        )})`);
  }
  if (index.strings.length) {
    const s = index.strings;
    await conn.query(sql.unsafe`INSERT INTO search_string (resource_type, resource_id, code, value, exact)
      SELECT * FROM unnest(${sql.array(n(s.length), 'text')}, ${sql.array(m(s.length), 'text')},
        ${sql.array(
          s.map((x) => x.code),
          'text',
        )}, ${sql.array(
          s.map((x) => x.value),
          'text',
        )},
        ${sql.array(
          s.map((x) => x.exact),
          'text',
        )})`);
  }
  if (index.dates.length) {
    const d = index.dates;
    await conn.query(sql.unsafe`INSERT INTO search_date (resource_type, resource_id, code, low, high)
      SELECT * FROM unnest(${sql.array(n(d.length), 'text')}, ${sql.array(m(d.length), 'text')},
        ${sql.array(
          d.map((x) => x.code),
          'text',
        )}, ${sql.array(
          d.map((x) => pgTime(x.low)),
          'timestamptz',
        )},
        ${sql.array(
          d.map((x) => pgTime(x.high)),
          'timestamptz',
        )})`);
  }
  if (index.references.length) {
    const r = index.references;
    await conn.query(sql.unsafe`INSERT INTO search_reference (resource_type, resource_id, code, target_type, target_id)
      SELECT * FROM unnest(${sql.array(n(r.length), 'text')}, ${sql.array(m(r.length), 'text')},
        ${sql.array(
          r.map((x) => x.code),
          'text',
        )}, ${sql.array(
          r.map((x) => x.targetType),
          'text',
        )},
        ${sql.array(
          r.map((x) => x.targetId),
          'text',
        )})`);
  }
}

/** Row values of a version besides content and bridge keys. */
export interface RowMeta {
  versionId: number;
  lastUpdated: string;
  patientId: string | null;
  sortDate: Date | null;
  sortString: string;
}

/** Upserts the current version of a resource with its compartment owner, sort keys and bridge-key columns. */
export async function writeRow(
  tx: CommonQueryMethods,
  type: FhirType,
  resource: Resource & { id: string },
  row: RowMeta,
  bridge: BridgeColumns,
): Promise<void> {
  const cols = (BRIDGE_COLUMNS[type] ?? []).map((c) => [c, bridge[c] ?? null] as const);
  const names = [
    'id',
    'version_id',
    'last_updated',
    'deleted',
    'content',
    'patient_id',
    'sort_date',
    'sort_string',
    ...cols.map(([c]) => c),
  ].map((c) => sql.identifier([c]));
  const values = [
    sql.fragment`${resource.id}`,
    sql.fragment`${row.versionId}`,
    sql.fragment`${row.lastUpdated}::timestamptz`,
    sql.fragment`false`,
    sql.fragment`${sql.jsonb(resource as never)}`,
    sql.fragment`${row.patientId}`,
    sql.fragment`${row.sortDate ? pgTime(row.sortDate) : '-infinity'}::timestamptz`,
    sql.fragment`${row.sortString}`,
    ...cols.map(([c, v]) => (c === 'uploaded_at' ? sql.fragment`${v}::timestamptz` : sql.fragment`${v}`)),
  ];
  const updates = names.slice(1).map((n) => sql.fragment`${n} = EXCLUDED.${n}`);
  await tx.query(sql.unsafe`
    INSERT INTO ${sql.identifier([RESOURCES[type].table])} (${sql.join(names, sql.fragment`, `)})
    VALUES (${sql.join(values, sql.fragment`, `)})
    ON CONFLICT (id) DO UPDATE SET ${sql.join(updates, sql.fragment`, `)}`);
}

/** Appends a version to fhir_history (deletions included, with the last content). */
export async function writeHistory(
  tx: CommonQueryMethods,
  type: FhirType,
  resource: Resource,
  v: { versionId: number; lastUpdated: string; patientId: string | null; deleted: boolean; method: string },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO fhir_history (resource_type, id, version_id, last_updated, deleted, method, content, patient_id)
    VALUES (${type}, ${resource.id ?? ''}, ${v.versionId}, ${v.lastUpdated}::timestamptz, ${v.deleted}, ${v.method},
            ${sql.jsonb(resource as never)}, ${v.patientId})`);
}
