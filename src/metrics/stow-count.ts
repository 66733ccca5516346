/**
 * Counts the instances of a STOW-RS response by outcome, read from the response body (DICOM PS3.18 §10.5.3):
 * Referenced SOP Sequence (0008,1199) items are stored (a `warning` when they carry a Warning Reason (0008,1196)),
 * Failed SOP Sequence (0008,1198) items failed with their Failure Reason (0008,1197).
 */
export interface StowCount {
  outcome: 'stored' | 'warning' | 'failed';
  reason: string;
  count: number;
}

type Element = { Value?: unknown[] };
type Dataset = Record<string, Element | undefined>;

function items(ds: Dataset, tag: string): Dataset[] {
  const v = ds[tag]?.Value;
  return Array.isArray(v) ? (v.filter((x) => x !== null && typeof x === 'object') as Dataset[]) : [];
}

function hex(ds: Dataset, tag: string): string {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'number' ? v.toString(16).toUpperCase().padStart(4, '0') : '';
}

/** The outcome counts of a STOW-RS response body (DICOM JSON), or none when it is not one. */
export function stowCounts(body: string): StowCount[] {
  let ds: unknown;
  try {
    ds = JSON.parse(body);
  } catch {
    return [];
  }
  if (ds === null || typeof ds !== 'object' || Array.isArray(ds)) return [];
  const counts = new Map<string, StowCount>();
  const add = (outcome: StowCount['outcome'], reason: string) => {
    const key = `${outcome}/${reason}`;
    const c = counts.get(key) ?? { outcome, reason, count: 0 };
    c.count++;
    counts.set(key, c);
  };
  for (const it of items(ds as Dataset, '00081199')) {
    const warning = hex(it, '00081196');
    add(warning ? 'warning' : 'stored', warning);
  }
  for (const it of items(ds as Dataset, '00081198')) add('failed', hex(it, '00081197'));
  return [...counts.values()];
}

/**
 * The outcome counts of an upload-form response (`/api/v1/dicom/upload`: `accepted` and `rejected[].reason`, whose
 * reason ends in the DICOM Failure Reason, e.g. `(0xA900)`); the same pipeline as STOW-RS.
 */
export function uploadCounts(body: string): StowCount[] {
  let r: unknown;
  try {
    r = JSON.parse(body);
  } catch {
    return [];
  }
  if (r === null || typeof r !== 'object') return [];
  const { accepted, rejected } = r as { accepted?: unknown; rejected?: unknown };
  const out: StowCount[] = [];
  if (typeof accepted === 'number' && accepted > 0) out.push({ outcome: 'stored', reason: '', count: accepted });
  const failed = new Map<string, number>();
  for (const x of Array.isArray(rejected) ? rejected : []) {
    const m = /\(0x([0-9A-Fa-f]{4})\)\s*$/.exec(String((x as { reason?: unknown })?.reason ?? ''));
    const reason = m ? m[1]!.toUpperCase() : '';
    failed.set(reason, (failed.get(reason) ?? 0) + 1);
  }
  for (const [reason, count] of failed) out.push({ outcome: 'failed', reason, count });
  return out;
}
