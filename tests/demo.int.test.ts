/**
 * The demo (`bin/ehr demo`, run by `make up` on a fresh data folder) against the real facade on the throwaway stack:
 * what it loads, that it goes through the API (FHIR, STOW-RS) and is visible per role, the logins file, and that a
 * second run changes nothing. Then the README's walkthrough, run as written on what the demo left behind
 * (helpers/walkthrough.ts): it needs the demo, so it runs here, after the demo's first load has been checked.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { LOGINS_FILE, MARKER_FILE, runDemo } from '../src/cli/demo-command.ts';
import type { DemoResult } from '../src/cli/demo.ts';
import { DEMO_SYSTEM, DEMO_USERS } from '../src/cli/demo-data.ts';
import { pydicomAvailable } from '../src/cli/demo-dicom.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { bearer, tokenFor } from './helpers/auth.ts';
import { runWalkthrough, steps, type WalkthroughRun } from './helpers/walkthrough.ts';

let config: ReturnType<typeof testConfig>;
let app: FastifyInstance;
let baseUrl: string;
let dataDir: string;
let first: DemoResult;
const output: string[] = [];

beforeAll(async () => {
  // The facade's public base URL is the address it listens on, as on a reader's machine (the walkthrough's tokens
  // name it as their audience).
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  config = testConfig({ host: '127.0.0.1', port, publicBaseUrl: baseUrl });
  app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  dataDir = mkdtempSync(join(tmpdir(), 'ehr-demo-'));
  first = await runDemo(config, dataDir, (l) => output.push(l), { baseUrl });
}, 180_000);
afterAll(async () => {
  await app.close();
});

async function get(path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}${path}`, { headers: bearer(token) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const entries = (bundle: Record<string, unknown>) => ((bundle['entry'] as unknown[] | undefined) ?? []).length;

const userToken = (username: string, roles: string[]) =>
  tokenFor(app, { user: { username, roles: roles as never }, scope: 'user/*.rs' });

describe('first run', () => {
  test('one login per role, passwords printed once and kept in a 0600 file', () => {
    expect(first.logins.map((l) => l.role).sort()).toEqual(
      ['admin', 'auditor', 'doctor', 'nurse', 'patient', 'radiologist'].sort(),
    );
    expect(first.logins.every((l) => typeof l.password === 'string' && l.password.length >= 12)).toBe(true);
    const file = join(dataDir, LOGINS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    for (const l of first.logins) expect(text).toContain(`${l.password}`);
    expect(text).toMatch(/development only/i);
    const printed = output.join('\n');
    for (const l of first.logins) expect(printed).toContain(l.password!);
    expect(printed).toMatch(/development only/i);
    expect(JSON.parse(readFileSync(join(dataDir, MARKER_FILE), 'utf8')).showcaseOrderId).toBe(first.showcaseOrderId);
  });

  test('patients with MRNs, visits and orders, created through the FHIR API', async () => {
    expect(Object.keys(first.patients)).toHaveLength(3);
    expect(Object.keys(first.orders)).toHaveLength(4);
    const admin = await userToken('demo-admin', ['admin']);
    const patients = await get(`/fhir/Patient?identifier=${encodeURIComponent(`${DEMO_SYSTEM}|p1`)}`, admin);
    expect(entries(patients.body)).toBe(1);
    const encounters = await get(`/fhir/Encounter?subject=Patient/${first.patients['p1']!.id}`, admin);
    expect(entries(encounters.body)).toBeGreaterThanOrEqual(1);
  });

  test('images uploaded through STOW-RS and linked to their orders', async () => {
    expect(first.orders['o1']!.studies).toBe(1);
    expect(first.orders['o4']!.studies).toBe(0);
    expect(first.storedInstances).toBe(pydicomAvailable() ? 24 + 2 : 24);
    const admin = await userToken('demo-admin', ['admin']);
    const studies = await get(`/fhir/ImagingStudy?basedon=ServiceRequest/${first.orders['o1']!.id}`, admin);
    const study = (
      studies.body['entry'] as { resource: { numberOfInstances: number; modality?: { code: string }[] } }[]
    )[0]!.resource;
    expect(study.numberOfInstances).toBe(24);
    const order = await get(`/fhir/ServiceRequest/${first.orders['o1']!.id}`, admin);
    expect(order.status).toBe(200);
  });

  test('access per role: the doctor sees granted patients, the nurse and the patient one, the auditor none', async () => {
    const search = async (token: string) =>
      (
        await get(
          `/fhir/Patient?identifier=${encodeURIComponent(`${DEMO_SYSTEM}|p1,${DEMO_SYSTEM}|p2,${DEMO_SYSTEM}|p3`)}`,
          token,
        )
      ).body;
    const doctor = await userToken('demo-doctor', ['doctor']);
    const nurse = await userToken('demo-nurse', ['nurse']);
    expect(entries(await search(doctor))).toBe(3);
    expect(entries(await search(nurse))).toBe(1);
    // demo-patient is a patient login for Ada: its token has her as context and reaches her record only.
    const patient = await tokenFor(app, {
      user: { username: 'demo-patient', roles: ['patient'], patientId: first.patients['p1']!.id },
      scope: 'user/*.rs',
    });
    expect(entries(await search(patient))).toBe(1);
    const auditor = await userToken('demo-auditor', ['auditor']);
    expect((await get('/fhir/Patient', auditor)).status).toBe(403);
    const qido = await fetch(`${baseUrl}/dicom-web/studies?AccessionNumber=${first.orders['o1']!.accession}`, {
      headers: { ...bearer(doctor), accept: 'application/dicom+json' },
    });
    expect(qido.status).toBe(200);
    expect((await qido.json()) as unknown[]).toHaveLength(1);
  });

  test('demo-patient stands for Ada, whose CT has a study and a final report', async () => {
    const row = await app.db.one(sql.unsafe`SELECT roles, patient_id FROM users WHERE username = 'demo-patient'`);
    expect(row).toEqual({ roles: ['patient'], patient_id: first.patients['p1']!.id });
    const admin = await userToken('demo-admin', ['admin']);
    const reports = await get(`/fhir/DiagnosticReport?based-on=ServiceRequest/${first.orders['o1']!.id}`, admin);
    const report = (reports.body['entry'] as { resource: { status: string; imagingStudy?: unknown[] } }[])[0]!.resource;
    expect(report.status).toBe('final');
    expect(report.imagingStudy).toHaveLength(1);
    expect(first.orders['o1']!.studies).toBe(1);
  });

  test('a viewer link of the showcase order', () => {
    expect(first.viewerUrl).toMatch(/^http.*\/viewer/);
  });
});

describe('second run', () => {
  test('changes nothing: same records, no new users, passwords kept, no upload', async () => {
    const before = readFileSync(join(dataDir, LOGINS_FILE), 'utf8');
    const again = await runDemo(config, dataDir, () => undefined, { baseUrl });
    expect(again.logins.some((l) => l.password)).toBe(false);
    expect(again.storedInstances).toBe(0);
    expect(again.patients).toEqual(first.patients);
    expect(Object.fromEntries(Object.entries(again.orders).map(([k, o]) => [k, o.id]))).toEqual(
      Object.fromEntries(Object.entries(first.orders).map(([k, o]) => [k, o.id])),
    );
    expect(readFileSync(join(dataDir, LOGINS_FILE), 'utf8')).toBe(before);
    expect(DEMO_USERS).toHaveLength(6);
  });
});

describe('README walkthrough, on the loaded demo', () => {
  let run: WalkthroughRun;
  beforeAll(async () => {
    run = await runWalkthrough({ baseUrl, dataDir, stack: inject('stack') });
    if (process.env['EHR_WALKTHROUGH_TRANSCRIPT'])
      writeFileSync(process.env['EHR_WALKTHROUGH_TRANSCRIPT'], run.transcript);
  }, 300_000);

  test('has commands to run', () => {
    expect(steps.length).toBeGreaterThan(5);
  });

  test.each(steps.map((s, i) => ({ ...s, i, name: `line ${s.line}: ${s.command.slice(0, 90)}` })))(
    '$name',
    ({ i, expect: promised }) => {
      const r = run.results[i];
      if (!r) throw new Error(`the step did not run (an earlier one failed?); transcript:\n${run.transcript}`);
      expect({ code: r.code, output: r.output }).toMatchObject({ code: 0 });
      if (promised !== undefined) expect(r.output).toContain(promised);
    },
  );
});
