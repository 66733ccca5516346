/**
 * What every workload gets (the stack, the data set, the callers' targets) and what it gives back (results), plus the
 * paired runner: both sides of a comparison measured back to back in every repetition, in alternating order.
 */
import type { Admin, Caller } from './admin.ts';
import type { BenchConfig, Group } from './config.ts';
import type { InstanceRef, StudyLayout } from './data.ts';
import type { BenchStack, RunningFacade } from './stack.ts';
import { orderOfRep, type PairedSummary, type Sample, type Spread, spread, summarisePaired } from './stats.ts';
import type { Target } from './wrk.ts';

export interface ImagingPatient {
  patientId: string;
  mrn: string;
  studies: StudyLayout[];
}

export interface DataSet {
  patients: ImagingPatient[];
  instances: InstanceRef[];
  series: { study: string; series: string }[];
  /** Bulk FHIR: ids to read and values to search. */
  fhir: { patientIds: string[]; families: string[]; mrns: string[]; total: number };
}

export interface Ctx {
  cfg: BenchConfig;
  workDir: string;
  stack: BenchStack;
  facade: RunningFacade;
  admin: Admin;
  data: DataSet;
  direct: Target;
  facadeAs(who: Caller, f?: RunningFacade): Promise<Target>;
  log(line: string): void;
  /** Seconds left before the run's hard deadline. */
  secondsLeft(): number;
}

export interface RatioTarget {
  /** `rate`: b.rate ÷ a.rate; `p50`: a.p50 ÷ b.p50 (both: higher is better for b). */
  metric: 'rate' | 'p50';
  min: number;
  text: string;
}

export interface PairedResult {
  kind: 'paired';
  id: string;
  group: Group;
  label: string;
  aLabel: string;
  bLabel: string;
  /** What `rate` counts (req/s, inst/s...), and whether MB/s means anything here. */
  unit: string;
  showMb: boolean;
  summary: PairedSummary;
  target?: RatioTarget;
  note?: string;
}

export interface AbsoluteResult {
  kind: 'absolute';
  id: string;
  group: Group;
  label: string;
  unit: string;
  value: Spread;
  /** Upper bound the value must stay under. */
  target?: { max: number; text: string };
  detail?: string;
}

export type Result = PairedResult | AbsoluteResult;

export interface PairedSpec {
  id: string;
  group: Group;
  label: string;
  aLabel?: string;
  bLabel?: string;
  unit?: string;
  showMb?: boolean;
  a: () => Promise<Sample>;
  b: () => Promise<Sample>;
  target?: RatioTarget;
  note?: string;
  /** Reps (defaults to the configuration's). */
  reps?: number;
  /** Run each side once, unrecorded, before the first repetition. */
  warmup?: { a: () => Promise<unknown>; b: () => Promise<unknown> };
}

/** Runs a paired comparison: warm-up, then per repetition both sides in alternating order (a b, b a, a b...). */
export async function paired(ctx: Ctx, spec: PairedSpec): Promise<PairedResult> {
  const reps = spec.reps ?? ctx.cfg.reps;
  if (spec.warmup) {
    await spec.warmup.a();
    await spec.warmup.b();
  }
  const a: Sample[] = [];
  const b: Sample[] = [];
  for (let rep = 0; rep < reps; rep++) {
    for (const side of orderOfRep(rep, 'a' as const, 'b' as const)) {
      const s = await (side === 'a' ? spec.a() : spec.b());
      (side === 'a' ? a : b).push(s);
    }
  }
  const summary = summarisePaired({ a, b });
  const r: PairedResult = {
    kind: 'paired',
    id: spec.id,
    group: spec.group,
    label: spec.label,
    aLabel: spec.aLabel ?? 'direct',
    bLabel: spec.bLabel ?? 'facade',
    unit: spec.unit ?? 'req/s',
    showMb: spec.showMb ?? false,
    summary,
    ...(spec.target ? { target: spec.target } : {}),
    ...(spec.note ? { note: spec.note } : {}),
  };
  const ratio = spec.target?.metric === 'p50' ? summary.p50Ratio : summary.rateRatio;
  ctx.log(
    `${spec.id}: ${r.aLabel} ${summary.a.rate.median.toFixed(1)} ${r.unit} p50 ${summary.a.p50.median.toFixed(2)} ms | ` +
      `${r.bLabel} ${summary.b.rate.median.toFixed(1)} ${r.unit} p50 ${summary.b.p50.median.toFixed(2)} ms | ` +
      `ratio ${ratio.median.toFixed(2)} (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})` +
      (summary.a.errors + summary.b.errors ? ` errors ${summary.a.errors}/${summary.b.errors}` : ''),
  );
  return r;
}

export function absolute(
  id: string,
  group: Group,
  label: string,
  unit: string,
  values: number[],
  target?: { max: number; text: string },
  detail?: string,
): AbsoluteResult {
  return {
    kind: 'absolute',
    id,
    group,
    label,
    unit,
    value: spread(values),
    ...(target ? { target } : {}),
    ...(detail ? { detail } : {}),
  };
}

/** Pass/fail of a result against its target (undefined: no target). */
export function verdict(r: Result): boolean | undefined {
  if (r.kind === 'paired') {
    if (!r.target) return undefined;
    const ratio = r.target.metric === 'p50' ? r.summary.p50Ratio : r.summary.rateRatio;
    return ratio.median >= r.target.min;
  }
  if (!r.target) return undefined;
  return r.value.median <= r.target.max;
}
