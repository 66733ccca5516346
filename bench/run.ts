/**
 * `make bench`: the facade against direct Orthanc, in one run, on a throwaway stack (see README "Benchmarks").
 *
 *   taskset -c 1 node bench/run.ts            (the Makefile pins the harness to the client CPU)
 *   BENCH_SCALE=small make bench              (~3-minute smoke run; see bench/config.ts for every knob)
 *
 * Order: stack (pinned) → facade → data set through STOW-RS + bulk FHIR → workload groups → bench/RESULTS.md → stack
 * down. Every wrk run is bounded by its duration, and the whole run by BENCH_DEADLINE_S.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/load-config.ts';
import { freePort } from '../src/stack/process.ts';
import { type Admin, startAdmin } from './admin.ts';
import { benchConfig, type Group, instanceCount } from './config.ts';
import type { Ctx, Result } from './context.ts';
import { type Conditions, writeReport } from './report.ts';
import { seed } from './seed.ts';
import {
  affinityOf,
  BENCH_ENV,
  type BenchStack,
  CLIENT_CPU,
  memoryOf,
  pin,
  repinServers,
  startBenchFacade,
  startBenchStack,
  stopBenchFacade,
  stopBenchStack,
} from './stack.ts';
import { median } from './stats.ts';
import {
  metadataWorkloads,
  pairedHttp,
  qidoWorkloads,
  wadoWithoutAuditWorkloads,
  wadoPeerWorkloads,
  wadoWorkloads,
} from './workloads/dicomweb.ts';
import { auditWorkloads, fhirWorkloads } from './workloads/fhir.ts';
import { ohifWorkloads } from './workloads/ohif.ts';
import { startPlainProxy } from './plain-proxy.ts';
import type { Target } from './wrk.ts';
import { rssWorkloads, stowWorkloads } from './workloads/stow.ts';
import { CHROMIUM } from '../tests/e2e/helpers/chromium.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const WORK = join(ROOT, 'bench', '.work');
const started = Date.now();
const log = (line: string) =>
  process.stdout.write(`[bench ${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s] ${line}\n`);

function version(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .split('\n')[0]
        ?.trim() ?? '?'
    );
  } catch (err) {
    return ((err as { stdout?: string }).stdout ?? '?').split('\n')[0]?.trim() || '?';
  }
}

function preflight(groups: ReadonlySet<Group>): void {
  const missing: string[] = [];
  for (const tool of ['wrk', 'taskset']) if (!existsSync(`/usr/bin/${tool}`)) missing.push(tool);
  if (groups.has('ohif') && !existsSync(CHROMIUM)) missing.push('chromium');
  if (groups.has('ohif') && !existsSync(join(ROOT, '.tools/ohif/dist/index.html'))) missing.push('the OHIF build');
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: run make setup (scripts/setup.sh) first`);
}

async function main(): Promise<void> {
  const cfg = benchConfig(process.env);
  preflight(cfg.only);
  mkdirSync(WORK, { recursive: true });
  await pin(process.pid, CLIENT_CPU);
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0] ?? 0), 5000);
  const load0 = loadavg();
  log(
    `scale ${cfg.scale}: ${instanceCount(cfg)} instances, ${cfg.fhirResources} FHIR resources, ${cfg.reps} reps × ${cfg.durationS} s; load ${load0.map((x) => x.toFixed(2)).join(' ')}`,
  );

  let stack: BenchStack | undefined;
  let admin: Admin | undefined;
  const cleanup = async () => {
    clearInterval(loadTimer);
    await admin?.close().catch(() => undefined);
    if (stack && !cfg.keep) await stopBenchStack(stack).catch((e) => log(`stack down failed: ${String(e)}`));
  };
  const deadline = setTimeout(() => {
    log(`deadline of ${cfg.deadlineS} s reached: stopping`);
    void cleanup().finally(() => process.exit(3));
  }, cfg.deadlineS * 1000);
  deadline.unref();
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

  const results: Result[] = [];
  try {
    stack = await startBenchStack(WORK, log);
    const facade = await startBenchFacade(stack, WORK, {
      name: 'main',
      logLevel: cfg.logLevel,
      ...(cfg.profile ? { inspectPort: await freePort() } : {}),
    });
    const rssAtStart = memoryOf(facade.pid).rssMb;
    log(
      `facade pid ${facade.pid} on ${facade.baseUrl} (CPU ${await affinityOf(facade.pid)}), RSS ${rssAtStart.toFixed(0)} MB`,
    );
    const env = { ...facade.process.env };
    delete env['NODE_OPTIONS'];
    admin = await startAdmin({ ...env, ...BENCH_ENV });
    const config = loadConfig({ ...env });
    const adminRef = admin;
    const ctx: Ctx = {
      cfg,
      workDir: WORK,
      stack,
      facade,
      admin,
      data: undefined as never,
      direct: { base: stack.info.orthancUrl, headers: { authorization: stack.orthancBasic } },
      facadeAs: async (who, f = facade) => ({
        base: f.baseUrl,
        headers: { authorization: `Bearer ${await adminRef.token(who)}` },
      }),
      log,
      secondsLeft: () => cfg.deadlineS - (Date.now() - started) / 1000,
    };
    ctx.data = await seed({
      cfg,
      admin,
      facade: () => ctx.facadeAs('admin'),
      fhirBase: `${config.publicBaseUrl}/fhir`,
      mrnSystem: config.fhirMrnSystem,
      accessionSystem: config.fhirAccessionSystem,
      log,
    });
    await repinServers(stack); // PostgreSQL forked new backends while loading: they inherit CPU 0, but be sure

    const run = async (group: Group, fn: () => Promise<Result[]>) => {
      if (!cfg.only.has(group)) return;
      if (ctx.secondsLeft() < 30) {
        log(`${group}: skipped, too close to the deadline`);
        return;
      }
      const t0 = Date.now();
      try {
        results.push(...(await fn()));
      } catch (err) {
        log(`${group}: FAILED: ${(err as Error).stack ?? String(err)}`);
      }
      log(`${group}: ${Math.round((Date.now() - t0) / 1000)} s`);
    };
    const http = async (ws: ReturnType<typeof wadoWorkloads>) => {
      const out: Result[] = [];
      for (const w of ws) {
        const r = await pairedHttp(ctx, w);
        if (r) out.push(r);
      }
      return out;
    };
    await run('wado', async () => {
      // Each WADO row twice in a row: facade against direct Orthanc, then against a plain proxy (the peer).
      const proxy = await startPlainProxy(ctx);
      try {
        const peer: Target = { base: proxy.base, headers: {} };
        const out: Result[] = [];
        const peers = wadoPeerWorkloads(ctx);
        for (const [i, w] of wadoWorkloads(ctx).entries()) {
          const r = await pairedHttp(ctx, w, undefined, undefined, { b: ctx.facade.pid });
          if (r) out.push(r);
          const p = peers[i];
          const q = p
            ? await pairedHttp(ctx, p, peer, undefined, { a: proxy.child.pid, b: ctx.facade.pid })
            : undefined;
          if (q) out.push(q);
        }
        return out;
      } finally {
        proxy.child.kill('SIGTERM');
      }
    });
    await run('metadata', () => http(metadataWorkloads(ctx)));
    await run('qido', () => http(qidoWorkloads(ctx)));
    await run('fhir', () => fhirWorkloads(ctx));
    await run('audit', async () => {
      const off = await startBenchFacade(stack as BenchStack, WORK, {
        name: 'audit-off',
        logLevel: cfg.logLevel,
        auditOff: true,
        publicBaseUrl: facade.baseUrl,
      });
      const outbox = await startBenchFacade(stack as BenchStack, WORK, {
        name: 'audit-outbox',
        logLevel: cfg.logLevel,
        outbox: true,
        publicBaseUrl: facade.baseUrl,
      });
      try {
        const out = await auditWorkloads(ctx, off);
        out.push(...(await auditWorkloads(ctx, off, outbox)));
        for (const [variant, f] of [
          ['audit-off', off],
          ['outbox', outbox],
        ] as const) {
          const as = await ctx.facadeAs('doctor', f);
          for (const w of wadoWithoutAuditWorkloads(ctx, variant)) {
            const r = await pairedHttp(ctx, w, ctx.direct, as);
            if (r) out.push(r);
          }
        }
        return out;
      } finally {
        await stopBenchFacade(stack as BenchStack, 'audit-off');
        await stopBenchFacade(stack as BenchStack, 'audit-outbox');
      }
    });
    await run('ohif', () => ohifWorkloads(ctx));
    await run('stow', () => stowWorkloads(ctx));
    await run('rss', () => rssWorkloads(ctx));

    const orthancSystem = (await (
      await fetch(`${stack.info.orthancUrl}/system`, { headers: { authorization: stack.orthancBasic } })
    ).json()) as { Version?: string; DicomVersion?: string };
    const cpu = cpus()[0]?.model ?? '?';
    const conditions: Conditions = {
      date: `${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`,
      scale: cfg.scale === 'full' ? 'full scale' : "SMALL scale: a smoke run, not the issue's data set",
      machine: [
        `Machine: ${cpus().length} vCPU (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, ${version('uname', ['-sr'])}`,
      ],
      software: [
        `Node ${process.versions.node}; Orthanc ${orthancSystem.Version ?? '?'} (PostgreSQL index + storage, DICOMweb plugin); ${version('/usr/lib/postgresql/15/bin/postgres', ['--version'])}; ${version('wrk', ['--version'])}`,
        `Facade: git ${version('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])} plus the uncommitted working tree of that moment (shared tree); log level ${cfg.logLevel}; change feed off`,
      ],
      pinning: [
        `Pinning: PostgreSQL (postmaster and every backend) and Orthanc on CPU 0; facade, wrk, the harness, the auth proxy and chromium on CPU 1 (facade affinity ${await affinityOf(facade.pid)})`,
      ],
      load: `1-min load average at start ${load0[0]?.toFixed(2)}, median during the run ${median(loads).toFixed(2)}, max ${Math.max(...loads, 0).toFixed(2)}, at end ${loadavg()[0]?.toFixed(2)}`,
      dataSet: [
        `${cfg.patients} patients × ${cfg.studiesPerPatient} studies × ${cfg.seriesPerStudy} series × ${cfg.instancesPerSeries} instances = ${ctx.data.instances.length} dcmjs-generated CT instances (512×512, 16 bit, ~525 KB; ${((ctx.data.instances.length * 0.525) / 1000).toFixed(1)} GB), loaded through the facade's STOW-RS (so both sides serve the same instances)`,
        `${ctx.data.fhir.total.toLocaleString('en')} bulk FHIR resources (25 % Patient, 5 % Practitioner, 35 % Encounter, 35 % ServiceRequest) plus the imaging patients and orders`,
        `doctor granted ${cfg.doctorGrants} patients; patient token for imaging patient 1`,
      ],
      durationS: cfg.durationS,
      reps: cfg.reps,
      notes: [
        ...(process.env['BENCH_NOTE'] ? [`Note: ${process.env['BENCH_NOTE']}`] : []),
        'Durable PostgreSQL (fsync on), one cluster with the EHR and Orthanc databases',
        `Facade RSS right after start (ready, idle): ${rssAtStart.toFixed(0)} MB`,
        ...(cfg.profile
          ? [
              'BENCH_PROFILE=1: the facade ran with the inspector open; profiles come from extra runs after each comparison',
            ]
          : []),
        ...(cfg.only.size < 8 ? [`Only the groups ${[...cfg.only].join(', ')} were run`] : []),
      ],
      wallS: (Date.now() - started) / 1000,
    };
    writeFileSync(join(WORK, 'results.json'), JSON.stringify({ conditions, results }, null, 2));
    writeReport(resolve(ROOT, cfg.out), results, conditions);
    log(`wrote ${cfg.out} (raw results in bench/.work/results.json)`);
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
