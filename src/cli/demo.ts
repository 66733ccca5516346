/**
 * Loads the demo (development only) into a running facade: users straight into the database (like `bin/ehr user`),
 * everything clinical through the facade's own FHIR API, images through STOW-RS, so the demo exercises the same paths
 * as real clients (validation, matching to patient and order, ImagingStudy, audit). Idempotent: users, FHIR records
 * (conditional create on a demo identifier) and studies (an order that already has an ImagingStudy gets none) are
 * found on a second run, never duplicated; existing users keep their passwords.
 */
import { randomBytes } from 'node:crypto';
import type { Identifier } from '@medplum/fhirtypes';
import { type DatabasePool, sql } from 'slonik';
import { mintLocalToken } from '../auth/local-token.ts';
import { hashPassword } from '../auth/server/passwords.ts';
import type { MintContext } from '../auth/server/tokens.ts';
import {
  DEMO_ORDERS,
  DEMO_PATIENTS,
  DEMO_REPORTS,
  DEMO_SYSTEM,
  DEMO_USERS,
  type DemoOrder,
  type DemoPatient,
  type DemoReport,
  type DemoRole,
  SHOWCASE_ORDER,
} from './demo-data.ts';
import { ctPhantomSeries, type DemoTarget, PYDICOM_DIR, pydicomAvailable, pydicomStudy } from './demo-dicom.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** A demo step failed: the message says which and why. */
export class DemoError extends EhrError {
  override readonly code: ErrorCode = 'EHR_DEMO';
  override name = 'DemoError';
}

export interface DemoDeps {
  db: DatabasePool;
  mint: MintContext;
  /** The running facade, e.g. http://localhost:8000. */
  baseUrl: string;
  mrnSystem: string;
  accessionSystem: string;
  pydicomDir?: string;
  log?: (line: string) => void;
}

export interface DemoLogin {
  username: string;
  role: DemoRole;
  /** Set only when this run created the user (shown once). */
  password?: string;
  note?: string;
}

export interface DemoResult {
  logins: DemoLogin[];
  patients: Record<string, { id: string; mrn: string; name: string }>;
  orders: Record<string, { id: string; accession: string; display: string; studies: number }>;
  /** Instances stored by this run (0 on a second run). */
  storedInstances: number;
  viewerUrl?: string;
  showcaseOrderId: string;
}

const demoId = (key: string): Identifier => ({ system: DEMO_SYSTEM, value: key });

/** A resource as the facade returned it. */
interface Stored {
  id: string;
  identifier?: Identifier[];
}

function identifierValue(r: { identifier?: Identifier[] }, system: string): string {
  const v = r.identifier?.find((i) => i.system === system)?.value;
  if (!v) throw new DemoError(`the facade returned no ${system} identifier`);
  return v;
}

class FacadeClient {
  readonly #base: string;
  #token = '';
  constructor(base: string) {
    this.#base = base.replace(/\/$/, '');
  }
  set token(t: string) {
    this.#token = t;
  }
  async request(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) {
    const res = await fetch(`${this.#base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.#token}`, ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : new Uint8Array(body) }),
      signal: AbortSignal.timeout(120_000),
    }).catch((err: Error) => {
      throw new DemoError(`cannot reach the facade at ${this.#base} (${err.message}); is the stack up? (make up)`);
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) as unknown };
  }
  /** FHIR conditional create: the existing resource with the demo identifier, or a new one. */
  async ensure(resource: { resourceType: string; [k: string]: unknown }, key: string): Promise<Stored> {
    const type = resource.resourceType;
    const search = await this.request('GET', `/fhir/${type}?identifier=${encodeURIComponent(`${DEMO_SYSTEM}|${key}`)}`);
    if (search.status !== 200) throw new DemoError(`searching ${type} ${key}: ${search.status} ${search.text}`);
    const found = (search.json() as { entry?: { resource: Stored }[] }).entry?.[0]?.resource;
    if (found) return found;
    const res = await this.request('POST', `/fhir/${type}`, JSON.stringify(resource), {
      'content-type': 'application/fhir+json',
      'if-none-exist': `identifier=${DEMO_SYSTEM}|${key}`,
    });
    if (res.status !== 201 && res.status !== 200)
      throw new DemoError(`creating ${type} ${key}: ${res.status} ${res.text}`);
    return res.json() as Stored;
  }
}

/** Users: created with a generated password when missing; existing ones are left as they are. */
async function ensureUsers(db: DatabasePool): Promise<DemoLogin[]> {
  const out: DemoLogin[] = [];
  for (const u of DEMO_USERS) {
    const password = randomBytes(12).toString('base64url');
    const roles = u.role === 'patient' ? [] : [u.role];
    const inserted = await db.maybeOne(sql.unsafe`
      INSERT INTO users (username, display_name, roles, password_hash)
      VALUES (${u.username}, ${u.displayName}, ${sql.array(roles, 'text')}, ${await hashPassword(password)})
      ON CONFLICT (username) DO NOTHING RETURNING id`);
    out.push({ username: u.username, role: u.role, ...(inserted ? { password } : {}) });
  }
  return out;
}

async function userId(db: DatabasePool, username: string): Promise<string> {
  return ((await db.one(sql.unsafe`SELECT id FROM users WHERE username = ${username}`)) as { id: string }).id;
}

function multipartRelated(files: Buffer[]): { body: Buffer; type: string } {
  const boundary = `demo-${randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    body: Buffer.concat(parts),
    type: `multipart/related; type="application/dicom"; boundary=${boundary}`,
  };
}

function targetOf(p: DemoPatient, mrn: string, accession: string, order: DemoOrder): DemoTarget {
  return {
    mrn,
    accession,
    patientName: `${p.family}^${p.given}`,
    birthDate: p.birthDate.replace(/-/g, ''),
    sex: p.gender === 'female' ? 'F' : 'M',
    studyDescription: order.display,
  };
}

/**
 * A final radiology report on an order that has its study (none yet: skipped, a later run adds it): category RAD,
 * LOINC 18748-4, `basedOn` the order, `imagingStudy` its studies, interpreted by the demo radiologist.
 */
async function ensureReport(
  api: FacadeClient,
  rep: DemoReport,
  orderId: string,
  practitioners: Record<string, string>,
): Promise<void> {
  const res = await api.request('GET', `/fhir/ImagingStudy?basedon=ServiceRequest/${orderId}`);
  const studies = ((res.json() as { entry?: { resource: Stored }[] }).entry ?? []).map((e) => e.resource.id);
  if (studies.length === 0) return;
  const order = await api.request('GET', `/fhir/ServiceRequest/${orderId}`);
  const subject = (order.json() as { subject?: { reference?: string } }).subject;
  await api.ensure(
    {
      resourceType: 'DiagnosticReport',
      identifier: [demoId(rep.key)],
      status: 'final',
      category: [
        { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }] },
      ],
      code: { coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }] },
      subject,
      basedOn: [{ reference: `ServiceRequest/${orderId}` }],
      imagingStudy: studies.map((id) => ({ reference: `ImagingStudy/${id}` })),
      resultsInterpreter: [
        { reference: `Practitioner/${practitioners['pr-radiologist']}`, display: 'Dr Demo Radiologist' },
      ],
      issued: '2026-01-05T11:00:00Z',
      conclusion: rep.conclusion,
    },
    rep.key,
  );
}

/** Loads (or completes) the demo and returns the logins, records and a viewer link. */
export async function loadDemo(deps: DemoDeps): Promise<DemoResult> {
  const log = deps.log ?? (() => undefined);
  const { db } = deps;
  const logins = await ensureUsers(db);
  log(`users: ${logins.filter((l) => l.password).length} created, ${logins.filter((l) => !l.password).length} kept`);

  const api = new FacadeClient(deps.baseUrl);
  api.token = (await mintLocalToken(db, deps.mint, { username: 'demo-admin', scope: 'user/*.cruds' })).token;

  const practitioners: Record<string, string> = {};
  for (const [key, family, given] of [
    ['pr-doctor', 'Doctor', 'Demo'],
    ['pr-radiologist', 'Radiologist', 'Demo'],
  ] as const) {
    const p = await api.ensure(
      { resourceType: 'Practitioner', identifier: [demoId(key)], name: [{ family, given: [given], prefix: ['Dr'] }] },
      key,
    );
    practitioners[key] = p.id!;
  }
  for (const u of DEMO_USERS) {
    if (!u.practitioner) continue;
    await db.query(sql.unsafe`
      UPDATE users SET practitioner_id = ${practitioners[u.practitioner]!} WHERE username = ${u.username}`);
  }

  const patients: DemoResult['patients'] = {};
  for (const p of DEMO_PATIENTS) {
    const r = await api.ensure(
      {
        resourceType: 'Patient',
        identifier: [demoId(p.key)],
        name: [{ family: p.family, given: [p.given] }],
        gender: p.gender,
        birthDate: p.birthDate,
      },
      p.key,
    );
    patients[p.key] = { id: r.id!, mrn: identifierValue(r, deps.mrnSystem), name: `${p.given} ${p.family}` };
    await api.ensure(
      {
        resourceType: 'Encounter',
        identifier: [demoId(`enc-${p.key}`)],
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
        subject: { reference: `Patient/${r.id}` },
        participant: [{ individual: { reference: `Practitioner/${practitioners['pr-doctor']}` } }],
        period: { start: '2026-01-05T09:00:00Z', end: '2026-01-05T09:30:00Z' },
        reasonCode: [{ text: 'Demo visit' }],
      },
      `enc-${p.key}`,
    );
  }

  // Patient logins: created without a role (the Patient did not exist yet), now linked to their Patient.
  for (const u of DEMO_USERS) {
    if (!u.patient) continue;
    await db.query(sql.unsafe`
      UPDATE users SET roles = ARRAY['patient']::text[], patient_id = ${patients[u.patient]!.id}, updated_at = now()
      WHERE username = ${u.username} AND patient_id IS NULL`);
  }

  const admin = await userId(db, 'demo-admin');
  for (const u of DEMO_USERS) {
    for (const key of u.grants ?? []) {
      await db.query(sql.unsafe`
        INSERT INTO patient_grants (user_id, patient_id, granted_by, reason)
        SELECT id, ${patients[key]!.id}, ${admin}, 'demo: attending' FROM users WHERE username = ${u.username}
        ON CONFLICT DO NOTHING`);
    }
  }

  const orders: DemoResult['orders'] = {};
  let storedInstances = 0;
  const pydicomDir = deps.pydicomDir ?? PYDICOM_DIR;
  for (const o of DEMO_ORDERS) {
    const p = DEMO_PATIENTS.find((x) => x.key === o.patient)!;
    const patientId = patients[o.patient]!.id;
    const encounter = await api.request(
      'GET',
      `/fhir/Encounter?identifier=${encodeURIComponent(`${DEMO_SYSTEM}|enc-${p.key}`)}`,
    );
    const encounterId = (encounter.json() as { entry?: { resource: { id: string } }[] }).entry?.[0]?.resource.id;
    const r = await api.ensure(
      {
        resourceType: 'ServiceRequest',
        identifier: [demoId(o.key)],
        status: 'active',
        intent: 'order',
        category: [{ coding: [{ system: 'http://snomed.info/sct', code: '363679005', display: 'Imaging' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: o.code, display: o.display }], text: o.display },
        subject: { reference: `Patient/${patientId}` },
        ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
        requester: { reference: `Practitioner/${practitioners['pr-doctor']}` },
        // The radiologist reads the studies of orders they perform (docs/authorization.md, "Policy").
        performer: [{ reference: `Practitioner/${practitioners['pr-radiologist']}` }],
        authoredOn: '2026-01-05T09:20:00Z',
      },
      o.key,
    );
    const accession = identifierValue(r, deps.accessionSystem);
    const studiesRes = await api.request('GET', `/fhir/ImagingStudy?basedon=ServiceRequest/${r.id}&_summary=count`);
    let studies = Number((studiesRes.json() as { total?: number }).total ?? 0);
    if (o.images && studies === 0) {
      const target = targetOf(p, patients[o.patient]!.mrn, accession, o);
      let files: Buffer[] = [];
      if (o.images.kind === 'ct-phantom') files = ctPhantomSeries(target);
      else if (pydicomAvailable(pydicomDir)) files = pydicomStudy(o.images.file, target, pydicomDir);
      else log(`skipped ${o.images.file}: pydicom test files not found in ${pydicomDir} (apt install python3-pydicom)`);
      if (files.length) {
        const { body, type } = multipartRelated(files);
        const stow = await api.request('POST', '/dicom-web/studies', body, {
          'content-type': type,
          accept: 'application/dicom+json',
        });
        if (stow.status !== 200)
          throw new DemoError(`STOW-RS of ${o.display}: ${stow.status} ${stow.text.slice(0, 500)}`);
        storedInstances += files.length;
        studies = 1;
        log(`uploaded ${files.length} instance(s) for ${o.display} (${p.given} ${p.family}) through STOW-RS`);
      }
    }
    orders[o.key] = { id: r.id!, accession, display: o.display, studies };
  }

  for (const rep of DEMO_REPORTS) await ensureReport(api, rep, orders[rep.order]!.id, practitioners);

  const result: DemoResult = {
    logins,
    patients,
    orders,
    storedInstances,
    showcaseOrderId: orders[SHOWCASE_ORDER]!.id,
  };
  const viewerUrl = await showcaseViewerUrl(deps, result.showcaseOrderId).catch(() => undefined);
  if (viewerUrl) result.viewerUrl = viewerUrl;
  return result;
}

/** A fresh viewer link of the showcase order, asked for as the demo doctor (it works only with the doctor's grant). */
export async function showcaseViewerUrl(
  deps: Pick<DemoDeps, 'db' | 'mint' | 'baseUrl'>,
  orderId: string,
): Promise<string> {
  const api = new FacadeClient(deps.baseUrl);
  api.token = (await mintLocalToken(deps.db, deps.mint, { username: 'demo-doctor', scope: 'user/*.rs' })).token;
  const res = await api.request('GET', `/api/v1/dicom/viewer-url/${encodeURIComponent(orderId)}`);
  if (res.status !== 200) throw new DemoError(`viewer link: ${res.status} ${res.text}`);
  return (res.json() as { viewer_url: string }).viewer_url;
}
