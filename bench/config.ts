/**
 * Scale of a benchmark run, from the environment:
 *
 *   BENCH_SCALE=full (default) | small      the data set and the time spent per workload
 *   BENCH_REPS, BENCH_DURATION_S            override repetitions and seconds per timed wrk run
 *   BENCH_OHIF_REPS                         OHIF loads per side (default 5, small 1)
 *   BENCH_OHIF_TRACE=<dir>                  write each OHIF load's request waterfall there (JSON)
 *   BENCH_ONLY=wado,qido,...                run only these workload groups (see GROUPS)
 *   BENCH_PROFILE=1                         run the facade with --cpu-prof (profiles in bench/.work/prof)
 *   BENCH_LOG_LEVEL=info                    the facade's log level (default info, as in production)
 *   BENCH_KEEP=1                            leave the throwaway stack running at the end (for poking at it)
 *   BENCH_OUT=bench/RESULTS.md              where the report goes
 *   BENCH_NOTE="..."                        a sentence for the report's conditions (e.g. what else ran)
 *
 * The full data set: 20 patients × 5 studies × 2 series × 20 instances of 512×512 16-bit CT
 * (4000 instances, ~2.1 GB) plus 100k FHIR resources, and a 1 GB study for the memory bound.
 */

export const GROUPS = ['wado', 'metadata', 'qido', 'stow', 'fhir', 'audit', 'rss', 'ohif'] as const;
export type Group = (typeof GROUPS)[number];

export interface BenchConfig {
  scale: 'full' | 'small';
  patients: number;
  studiesPerPatient: number;
  seriesPerStudy: number;
  instancesPerSeries: number;
  fhirResources: number;
  /** Patients granted to the benchmark doctor (a doctor with 50 granted patients). */
  doctorGrants: number;
  reps: number;
  durationS: number;
  /** Studies of 40 instances each STOW client sends per repetition. */
  stowStudiesPerClient: number;
  /** Instances of the big study streamed in (STOW) and out (WADO) while the facade's RSS is sampled. */
  rssInstances: number;
  ohifReps: number;
  /** Where each OHIF load's request waterfall is written (BENCH_OHIF_TRACE), or undefined. */
  ohifTraceDir: string | undefined;
  only: ReadonlySet<Group>;
  profile: boolean;
  logLevel: string;
  keep: boolean;
  out: string;
  /** Hard limit for the whole run; the harness stops (and cleans up) when it is reached. */
  deadlineS: number;
}

function num(env: Record<string, string | undefined>, name: string, def: number): number {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number (got "${v}")`);
  return n;
}

export function benchConfig(env: Record<string, string | undefined>): BenchConfig {
  const scale = env['BENCH_SCALE'] === 'small' ? 'small' : 'full';
  if (env['BENCH_SCALE'] && !['small', 'full'].includes(env['BENCH_SCALE'])) {
    throw new Error(`BENCH_SCALE must be small or full (got "${env['BENCH_SCALE']}")`);
  }
  const full = scale === 'full';
  const only = (env['BENCH_ONLY'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const g of only) {
    if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`BENCH_ONLY: unknown group "${g}"`);
  }
  return {
    scale,
    patients: full ? 20 : 4,
    studiesPerPatient: full ? 5 : 2,
    seriesPerStudy: 2,
    instancesPerSeries: 20,
    fhirResources: num(env, 'BENCH_FHIR_RESOURCES', full ? 100_000 : 5_000),
    doctorGrants: full ? 50 : 10,
    reps: num(env, 'BENCH_REPS', full ? 5 : 2),
    durationS: num(env, 'BENCH_DURATION_S', full ? 6 : 1),
    stowStudiesPerClient: full ? 2 : 1,
    rssInstances: num(env, 'BENCH_RSS_INSTANCES', full ? 2000 : 200),
    ohifReps: num(env, 'BENCH_OHIF_REPS', full ? 5 : 1),
    ohifTraceDir: env['BENCH_OHIF_TRACE'] || undefined,
    only: new Set((only.length ? only : GROUPS) as Group[]),
    profile: env['BENCH_PROFILE'] === '1',
    logLevel: env['BENCH_LOG_LEVEL'] ?? 'info',
    keep: env['BENCH_KEEP'] === '1',
    out: env['BENCH_OUT'] ?? 'bench/RESULTS.md',
    deadlineS: num(env, 'BENCH_DEADLINE_S', full ? 3600 : 600),
  };
}

/** Instances of the main data set. */
export const instanceCount = (c: BenchConfig) =>
  c.patients * c.studiesPerPatient * c.seriesPerStudy * c.instancesPerSeries;
