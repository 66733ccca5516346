/**
 * FHIR read and search latency at the loaded scale (no direct counterpart: absolute p50/p99 against the targets), and
 * the audit trail's cost: the same requests against the normal facade and a second facade of the same run whose audit
 * plugin stores nothing (bench/audit-off-plugin.ts), interleaved and paired.
 */
import { sql } from 'slonik';
import { absolute, type Ctx, paired, type Result } from '../context.ts';
import type { RunningFacade } from '../stack.ts';
import { median, type Sample } from '../stats.ts';
import { probe, runWrk, type Target } from '../wrk.ts';
import { FRAME_ACCEPT, maybeProfile, shuffled } from './dicomweb.ts';

interface FhirLoad {
  id: string;
  label: string;
  paths: string[];
  maxP50: number;
}

function fhirLoads(ctx: Ctx): FhirLoad[] {
  const { patientIds, families, mrns } = ctx.data.fhir;
  const n = ctx.data.fhir.total.toLocaleString('en');
  return [
    {
      id: 'fhir-read',
      label: `FHIR read Patient/{id} at ${n} resources`,
      paths: shuffled(patientIds).map((id) => `/fhir/Patient/${id}`),
      maxP50: 2,
    },
    {
      id: 'fhir-search-family',
      label: `FHIR search Patient?family=… at ${n} resources`,
      paths: shuffled(families).map((f) => `/fhir/Patient?family=${encodeURIComponent(f)}`),
      maxP50: 10,
    },
    {
      id: 'fhir-search-identifier',
      label: `FHIR search Patient?identifier=MRN at ${n} resources`,
      paths: shuffled(mrns).map((m) => `/fhir/Patient?identifier=${encodeURIComponent(m)}`),
      maxP50: 10,
    },
    {
      id: 'fhir-search-patient-orders',
      label: `FHIR search ServiceRequest?patient=… at ${n} resources`,
      paths: shuffled(patientIds).map((id) => `/fhir/ServiceRequest?patient=Patient/${id}`),
      maxP50: 10,
    },
  ];
}

export async function fhirWorkloads(ctx: Ctx): Promise<Result[]> {
  const t = await ctx.facadeAs('admin');
  const out: Result[] = [];
  for (const w of fhirLoads(ctx)) {
    const status = await probe(t, w.paths[0] ?? '/fhir/metadata');
    if (status !== 200) {
      ctx.log(`${w.id}: SKIPPED, answers ${status}`);
      continue;
    }
    await runWrk({ target: t, paths: w.paths, connections: 1, durationS: 1 }, ctx.workDir);
    const samples: Sample[] = [];
    for (let rep = 0; rep < ctx.cfg.reps; rep++) {
      samples.push(
        await runWrk({ target: t, paths: w.paths, connections: 1, durationS: ctx.cfg.durationS }, ctx.workDir),
      );
    }
    const loaded = await runWrk(
      { target: t, paths: w.paths, connections: 16, durationS: ctx.cfg.durationS },
      ctx.workDir,
    );
    await maybeProfile(ctx, w.id, () =>
      runWrk({ target: t, paths: w.paths, connections: 1, durationS: ctx.cfg.durationS }, ctx.workDir),
    );
    const errors = samples.reduce((s, x) => s + x.errors, 0) + loaded.errors;
    const detail =
      `c=1: ${Math.round(median(samples.map((s) => s.rate)))} req/s; ` +
      `c=16: ${Math.round(loaded.rate)} req/s, p50 ${loaded.p50.toFixed(1)} ms, p99 ${loaded.p99.toFixed(1)} ms` +
      (errors ? `; ${errors} errors` : '');
    const p50 = absolute(
      `${w.id}-p50`,
      'fhir',
      `${w.label}: p50, c=1`,
      'ms',
      samples.map((s) => s.p50),
      {
        max: w.maxP50,
        text: `≤ ${w.maxP50} ms`,
      },
      detail,
    );
    const p99 = absolute(
      `${w.id}-p99`,
      'fhir',
      `${w.label}: p99, c=1`,
      'ms',
      samples.map((s) => s.p99),
    );
    ctx.log(`${w.id}: p50 ${p50.value.median.toFixed(2)} ms, p99 ${p99.value.median.toFixed(2)} ms; ${detail}`);
    out.push(p50, p99);
  }
  return out;
}

/** Audit on (the normal facade) against audit off (a second facade, same build and stack), paired. */
/**
 * Audit on against audit off, paired rep by rep. `outbox`: the "on" side is a facade recording read events through
 * the durable outbox (EHR_AUDIT_OUTBOX_DIR, src/audit/outbox.ts) instead of committing each batch to PostgreSQL.
 */
export async function auditWorkloads(ctx: Ctx, noAudit: RunningFacade, outbox?: RunningFacade): Promise<Result[]> {
  const on: Target = await ctx.facadeAs('doctor', outbox);
  const off: Target = await ctx.facadeAs('doctor', noAudit);
  const adminOn = await ctx.facadeAs('admin', outbox);
  const adminOff = await ctx.facadeAs('admin', noAudit);
  const variant = outbox ? { id: '-outbox', label: ' (durable outbox)', on: 'audit on, outbox' } : undefined;
  const inst = shuffled(ctx.data.instances);
  const studies = ctx.data.patients.flatMap((p) => p.studies);
  const loads = [
    {
      id: 'audit-fhir-read',
      label: 'Audit on vs off: FHIR read Patient/{id}, c=8',
      a: adminOff,
      b: adminOn,
      paths: shuffled(ctx.data.fhir.patientIds).map((id) => `/fhir/Patient/${id}`),
      headers: {} as Record<string, string>,
    },
    {
      id: 'audit-qido-series',
      label: 'Audit on vs off: QIDO-RS studies/{uid}/series (doctor), c=8',
      a: off,
      b: on,
      paths: shuffled(studies.map((s) => `/dicom-web/studies/${s.studyUid}/series`)),
      headers: {},
    },
    {
      id: 'audit-wado-frames',
      label: 'Audit on vs off: WADO-RS frames/1 (doctor), c=8',
      a: off,
      b: on,
      paths: inst.map((r) => `/dicom-web/studies/${r.study}/series/${r.series}/instances/${r.instance}/frames/1`),
      headers: { accept: FRAME_ACCEPT },
    },
  ];
  // The "off" side must really store no events for reads (and the "on" side one per request).
  const count = async () =>
    Number(((await ctx.admin.app.db.one(sql.unsafe`SELECT count(*)::int AS n FROM audit_event`)) as { n: number }).n);
  if (variant) {
    for (const l of loads) {
      l.id += variant.id;
      l.label = l.label.replace('Audit on vs off', `Audit on${variant.label} vs off`);
    }
  }
  const before = await count();
  const offRun = await runWrk(
    { target: adminOff, paths: loads[0]?.paths ?? [], connections: 1, durationS: 1 },
    ctx.workDir,
  );
  const afterOff = await count();
  const onRun = await runWrk(
    { target: adminOn, paths: loads[0]?.paths ?? [], connections: 1, durationS: 1 },
    ctx.workDir,
  );
  await new Promise((r) => setTimeout(r, variant ? 1000 : 0)); // the outbox ships within EHR_AUDIT_OUTBOX_SHIP_MS
  const afterOn = await count();
  const check = `events stored: audit off ${afterOff - before} for ${offRun.count} reads, audit on ${afterOn - afterOff} for ${onRun.count} reads`;
  ctx.log(`audit check: ${check}`);
  const out: Result[] = [];
  for (const l of loads) {
    const run =
      (t: Target, durationS = ctx.cfg.durationS) =>
      () =>
        runWrk({ target: t, paths: l.paths, connections: 8, durationS, headers: l.headers }, ctx.workDir);
    out.push(
      await paired(ctx, {
        id: l.id,
        group: 'audit',
        label: l.label,
        aLabel: 'audit off',
        bLabel: variant?.on ?? 'audit on',
        a: run(l.a),
        b: run(l.b),
        warmup: { a: run(l.a, 1), b: run(l.b, 1) },
        target: { metric: 'rate', min: 0.9, text: '≥ 0.90× (overhead ≤ 10 %)' },
        ...(l.id === 'audit-fhir-read' ? { note: check } : {}),
      }),
    );
  }
  return out;
}
