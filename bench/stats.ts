/**
 * Pure statistics of the benchmark: one measurement per side and repetition, paired rep by rep (the facade and
 * direct Orthanc measured back to back inside the same run), summarised as median with min and max.
 */

/** One timed run of one workload against one side. */
export interface Sample {
  /** Requests (or instances, for STOW) per second. */
  rate: number;
  /** Payload megabytes per second (10^6 bytes), when meaningful. */
  mbPerS: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** Requests answered with a non-2xx status, or failed. */
  errors: number;
  /** Requests completed. */
  count: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

/** A paired comparison: B and A measured alternately in each repetition. */
export interface Paired {
  a: Sample[];
  b: Sample[];
}

/** What goes into a table row: medians (min–max) of each side and of the per-rep ratio b ÷ a. */
export interface PairedSummary {
  reps: number;
  a: { rate: Spread; mbPerS: Spread; p50: Spread; p99: Spread; errors: number };
  b: { rate: Spread; mbPerS: Spread; p50: Spread; p99: Spread; errors: number };
  /** Per-rep throughput ratio b.rate ÷ a.rate (higher is better for b). */
  rateRatio: Spread;
  /** Per-rep latency ratio a.p50 ÷ b.p50 (higher is better for b; > 1 means b answers faster). */
  p50Ratio: Spread;
}

function side(samples: readonly Sample[]) {
  return {
    rate: spread(samples.map((s) => s.rate)),
    mbPerS: spread(samples.map((s) => s.mbPerS)),
    p50: spread(samples.map((s) => s.p50)),
    p99: spread(samples.map((s) => s.p99)),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
}

/** Summarises a paired measurement; ratios are computed per repetition, then summarised. */
export function summarisePaired(p: Paired): PairedSummary {
  const n = Math.min(p.a.length, p.b.length);
  const rates: number[] = [];
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = p.a[i] as Sample;
    const b = p.b[i] as Sample;
    if (a.rate > 0) rates.push(b.rate / a.rate);
    if (b.p50 > 0) lat.push(a.p50 / b.p50);
  }
  return { reps: n, a: side(p.a), b: side(p.b), rateRatio: spread(rates), p50Ratio: spread(lat) };
}

/** Order of the two sides in repetition `rep`: ABBA-style alternation so that slow drift cancels out. */
export function orderOfRep<T>(rep: number, a: T, b: T): [T, T] {
  return rep % 2 === 0 ? [a, b] : [b, a];
}
