/**
 * DICOMweb read workloads with wrk, each measured against Orthanc directly and through the facade with the same
 * request paths: WADO-RS frames and instances, series metadata, and QIDO-RS at study (filtered), series and instance
 * level for a patient token and for a doctor with granted patients.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { sql } from 'slonik';
import { join } from 'node:path';
import type { Caller } from '../admin.ts';
import type { Group } from '../config.ts';
import { type Ctx, type PairedResult, paired, type RatioTarget } from '../context.ts';
import { profileWhile } from '../profile.ts';
import { cpuMsOf, serverCpuMs } from '../stack.ts';
import { probe, runWrk, type Target } from '../wrk.ts';

export const FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
export const INSTANCE_ACCEPT = 'multipart/related; type="application/dicom"';
const STUDY_INCLUDES = 'includefield=00081030&includefield=00080061&includefield=00201208';

export interface HttpWorkload {
  id: string;
  group: Group;
  label: string;
  caller: Caller;
  paths: string[];
  connections: number;
  headers?: Record<string, string>;
  target?: RatioTarget;
  showMb?: boolean;
  /** Name of side a in the report ("direct" unless the peer is another server). */
  aLabel?: string;
}

/** The pids of the proxies on each side whose CPU time per request the report shows (none for direct Orthanc). */
export interface CpuPids {
  a?: number | undefined;
  b?: number | undefined;
}

/**
 * Checks that the first path answers 200 on both sides, then runs the paired wrk comparison. With `cpu`, the CPU time
 * (user + system) each given process spent per request over the timed runs goes into the row's note: unlike the
 * rates, it does not depend on what else the machine runs.
 */
export async function pairedHttp(
  ctx: Ctx,
  w: HttpWorkload,
  a?: Target,
  b?: Target,
  cpu: CpuPids = {},
): Promise<PairedResult | undefined> {
  const direct = a ?? ctx.direct;
  const facade = b ?? (await ctx.facadeAs(w.caller));
  const first = w.paths[0];
  if (!first) throw new Error(`${w.id}: no paths`);
  for (const [name, t] of [
    ['a', direct],
    ['b', facade],
  ] as const) {
    const status = await probe(t, first, w.headers ?? {});
    if (status !== 200) {
      ctx.log(`${w.id}: SKIPPED, side ${name} answers ${status} for ${first}`);
      return undefined;
    }
  }
  const spent = { a: { ms: 0, requests: 0 }, b: { ms: 0, requests: 0 } };
  const run =
    (t: Target, durationS = ctx.cfg.durationS, side?: 'a' | 'b') =>
    async () => {
      const pid = side ? cpu[side] : undefined;
      const c0 = pid ? cpuMsOf(pid) : 0;
      const r = await runWrk(
        {
          target: t,
          paths: w.paths,
          connections: w.connections,
          durationS,
          ...(w.headers ? { headers: w.headers } : {}),
        },
        ctx.workDir,
      );
      if (pid && side) {
        spent[side].ms += cpuMsOf(pid) - c0;
        spent[side].requests += r.count;
      }
      return r;
    };
  const result = await paired(ctx, {
    id: w.id,
    group: w.group,
    label: w.label,
    showMb: w.showMb ?? false,
    ...(w.aLabel ? { aLabel: w.aLabel } : {}),
    a: run(direct, ctx.cfg.durationS, 'a'),
    b: run(facade, ctx.cfg.durationS, 'b'),
    warmup: { a: run(direct, 1), b: run(facade, 1) },
    ...(w.target ? { target: w.target } : {}),
  });
  const perRequest = (side: 'a' | 'b', label: string) => {
    const x = spent[side];
    return cpu[side] && x.requests ? [`${label} ${(x.ms / x.requests).toFixed(2)} ms`] : [];
  };
  const cpuNote = [...perRequest('a', w.aLabel ?? 'direct'), ...perRequest('b', 'facade')];
  if (result && cpuNote.length) result.note = `(CPU per request: ${cpuNote.join(', ')})`;
  if (ctx.cfg.profile) {
    // Server CPU (CPU 0: PostgreSQL + Orthanc) per request, direct against facade, for the findings.
    const c0 = await serverCpuMs(ctx.stack);
    const d = await run(direct)();
    const c1 = await serverCpuMs(ctx.stack);
    const perReq = (ms: number, n: number) => (n ? (ms / n).toFixed(2) : '?');
    const line = `server CPU (PostgreSQL + Orthanc) per request: direct ${perReq(c1 - c0, d.count)} ms`;
    await maybeProfile(ctx, w.id, async () => {
      const f0 = await serverCpuMs(ctx.stack);
      const f = await run(facade)();
      const f1 = await serverCpuMs(ctx.stack);
      return { ...f, serverCpu: `${line}, facade ${perReq(f1 - f0, f.count)} ms` };
    });
  }
  return result;
}

/** BENCH_PROFILE=1: one more facade run of the workload with the CPU profiler on (bench/.work/prof/<id>.*). */
export async function maybeProfile(ctx: Ctx, id: string, work: () => Promise<unknown>): Promise<void> {
  const port = ctx.facade.inspectPort;
  if (!ctx.cfg.profile || !port) return;
  const dir = join(ctx.workDir, 'prof');
  mkdirSync(dir, { recursive: true });
  // EHR database work per request: every statement outside a transaction is one transaction in PostgreSQL.
  const stats = async () =>
    (await ctx.admin.app.db.one(sql.unsafe`
      SELECT xact_commit::float8 AS commits, (tup_inserted + tup_updated)::float8 AS writes,
             tup_returned::float8 AS returned
      FROM pg_stat_database WHERE datname = current_database()`)) as {
      commits: number;
      writes: number;
      returned: number;
    };
  const s0 = await stats();
  let requests = 0;
  let serverCpu = '';
  const text = await profileWhile(port, dir, id, async () => {
    const r = (await work()) as { count?: number; serverCpu?: string };
    requests = r.count ?? 0;
    serverCpu = r.serverCpu ?? '';
  });
  await new Promise((r) => setTimeout(r, 600)); // pg_stat counters are flushed at most every 500 ms
  const s1 = await stats();
  const per = (x: number) => (requests ? (x / requests).toFixed(1) : '?');
  const db =
    `EHR database per request: ${per(s1.commits - s0.commits)} transactions, ${per(s1.writes - s0.writes)} rows written` +
    (serverCpu ? `; ${serverCpu}` : '');
  writeFileSync(join(dir, `${id}.txt`), `${db}\n${text}`);
  ctx.log(`${id}: profile in bench/.work/prof/${id}.cpuprofile; ${db}\n${text.split('\n').slice(0, 14).join('\n')}`);
}

const instancePath = (r: { study: string; series: string; instance: string }) =>
  `/dicom-web/studies/${r.study}/series/${r.series}/instances/${r.instance}`;

/** A deterministic shuffle, so that consecutive requests do not walk one series in order. */
export function shuffled<T>(xs: readonly T[], seed = 1): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export function wadoWorkloads(ctx: Ctx): HttpWorkload[] {
  const inst = shuffled(ctx.data.instances);
  const frames = inst.map((r) => `${instancePath(r)}/frames/1`);
  const whole = inst.map(instancePath);
  const out: HttpWorkload[] = [];
  for (const c of [1, 16]) {
    const target: RatioTarget = { metric: 'rate', min: c === 1 ? 0.9 : 0.95, text: c === 1 ? '≥ 0.90×' : '≥ 0.95×' };
    out.push({
      id: `wado-frames-c${c}`,
      group: 'wado',
      label: `WADO-RS frames/1 (512×512×16 bit), c=${c}`,
      caller: 'doctor',
      paths: frames,
      connections: c,
      headers: { accept: FRAME_ACCEPT },
      target,
      showMb: true,
    });
    out.push({
      id: `wado-instance-c${c}`,
      group: 'wado',
      label: `WADO-RS instance (application/dicom), c=${c}`,
      caller: 'doctor',
      paths: whole,
      connections: c,
      headers: { accept: INSTANCE_ACCEPT },
      target,
      showMb: true,
    });
  }
  return out;
}

/**
 * The same WADO-RS rows against the peer a user would pick instead of the facade: a plain streaming proxy in front of
 * the same Orthanc (bench/auth-proxy.ts: keep-alive, no authorization, no audit). Ratio facade ÷ plain proxy.
 */
export function wadoPeerWorkloads(ctx: Ctx): HttpWorkload[] {
  return wadoWorkloads(ctx).map((w) => ({
    ...w,
    id: `${w.id}-vs-plain-proxy`,
    label: `${w.label}, against a plain proxy`,
    aLabel: 'plain proxy',
    target: { metric: 'rate', min: 1, text: '≥ 1.0×' },
  }));
}

/**
 * Diagnostic rows (no target): WADO-RS frames against a second facade of the same run whose audit plugin stores
 * nothing (bench/audit-off-plugin.ts), so that the report separates the proxy path's cost from the audit trail's.
 */
/** WADO-RS frames, direct against a facade variant: its audit trail off, or recording through the durable outbox. */
export function wadoWithoutAuditWorkloads(ctx: Ctx, variant: 'audit-off' | 'outbox' = 'audit-off'): HttpWorkload[] {
  const frames = shuffled(ctx.data.instances).map((r) => `${instancePath(r)}/frames/1`);
  const what = variant === 'outbox' ? 'its audit trail in the durable outbox' : 'its audit trail off';
  return [1, 16].map((c) => ({
    id: `wado-frames-c${c}-${variant}`,
    group: 'audit' as const,
    label: `Diagnostic: WADO-RS frames/1, c=${c}, direct against the facade with ${what}`,
    caller: 'doctor' as const,
    paths: frames,
    connections: c,
    headers: { accept: FRAME_ACCEPT },
    showMb: true,
  }));
}

export function metadataWorkloads(ctx: Ctx): HttpWorkload[] {
  const paths = shuffled(ctx.data.series).map((s) => `/dicom-web/studies/${s.study}/series/${s.series}/metadata`);
  return [1, 8].map((c) => ({
    id: `metadata-series-c${c}`,
    group: 'metadata' as const,
    label: `WADO-RS series metadata (20 instances), c=${c}`,
    caller: 'doctor' as const,
    paths,
    connections: c,
    headers: { accept: 'application/dicom+json' },
    target: { metric: 'rate' as const, min: 2, text: '≥ 2×' },
  }));
}

export function qidoWorkloads(ctx: Ctx): HttpWorkload[] {
  const out: HttpWorkload[] = [];
  const patient0 = ctx.data.patients[0];
  if (!patient0) return out;
  const callers: [Caller, string, typeof ctx.data.patients][] = [
    ['patient', 'patient token', [patient0]],
    ['doctor', `doctor, ${ctx.cfg.doctorGrants} granted patients`, ctx.data.patients],
  ];
  const c = 4;
  for (const [caller, who, patients] of callers) {
    const studies = patients.flatMap((p) => p.studies);
    out.push({
      id: `qido-study-${caller}`,
      group: 'qido',
      label: `QIDO-RS studies?PatientID=…&includefield (${who}), c=${c}`,
      caller,
      paths: patients.map((p) => `/dicom-web/studies?PatientID=${encodeURIComponent(p.mrn)}&${STUDY_INCLUDES}`),
      connections: c,
      target: { metric: 'rate', min: 1, text: '≥ 1.0×' },
    });
    out.push({
      id: `qido-series-${caller}`,
      group: 'qido',
      label: `QIDO-RS studies/{uid}/series (${who}), c=${c}`,
      caller,
      paths: shuffled(studies.map((s) => `/dicom-web/studies/${s.studyUid}/series`)),
      connections: c,
    });
    out.push({
      id: `qido-instances-${caller}`,
      group: 'qido',
      label: `QIDO-RS studies/{uid}/series/{uid}/instances (${who}), c=${c}`,
      caller,
      paths: shuffled(
        studies.flatMap((s) => s.series.map((x) => `/dicom-web/studies/${s.studyUid}/series/${x.uid}/instances`)),
      ),
      connections: c,
      target: { metric: 'rate', min: 2, text: '≥ 2×' },
    });
  }
  return out;
}
