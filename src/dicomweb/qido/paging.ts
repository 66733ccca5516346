/**
 * How a QIDO-RS search is constrained to the studies a caller may see, so that filtering is part of the query and
 * `limit`/`offset` apply to the allowed set only (a page never hides or leaks
 * studies the caller may not see). Pure: no I/O.
 *
 * Strategy ("answer from the EHR's study index"): the allowed set is the list of StudyInstanceUIDs that the EHR's
 * study index (`imaging_studies`) links to the caller's patients. That list, intersected with the caller's own
 * StudyInstanceUID constraint, becomes Orthanc's StudyInstanceUID list constraint (UID list matching,
 * PS3.18 §8.3.4.1). Orthanc then matches the caller's other attributes and pages over exactly that set:
 * - up to `maxUids` UIDs: one Orthanc query with the caller's `limit`/`offset` passed through unchanged;
 * - more: the list is split into chunks; each chunk is queried without paging, the results are merged in a stable
 *   order (by UIDs) and the page is cut from the merged list ({@link pageOfMerged}).
 * Either way a page holds `limit` results while allowed matches remain, and nothing outside the allowed set is ever
 * requested from Orthanc, so no count, header or link can reveal it. Unlinked studies are in no patient's set.
 * Under each allowed UID only the Orthanc study the EHR links may answer: the scope names its PatientID, and the
 * search adds it to the query and filters the answers (access/linked-orthanc-studies.ts).
 */
import type { StudyScope } from '../access/linked-orthanc-studies.ts';

export type QidoPlan =
  /** Nothing the caller may see can match: answer `[]` without asking Orthanc. */
  | { readonly kind: 'empty' }
  /** One Orthanc query; `studyUids` replaces the caller's StudyInstanceUID constraint when set. */
  | { readonly kind: 'single'; readonly studyUids?: readonly string[] }
  /** Several Orthanc queries, one per chunk of allowed UIDs, merged and paged by the facade. */
  | { readonly kind: 'chunks'; readonly chunks: readonly (readonly string[])[] };

/**
 * Plans the Orthanc queries for one search.
 * @param requested the caller's StudyInstanceUID list, if any
 * @param pathStudyUid the `{study}` of `/studies/{study}/series|instances`, if any
 */
export function planQido(
  scope: StudyScope,
  requested: readonly string[] | undefined,
  pathStudyUid: string | undefined,
  maxUids: number,
): QidoPlan {
  if (scope.all) return { kind: 'single' };
  if (pathStudyUid !== undefined) {
    if (!scope.studies.has(pathStudyUid)) return { kind: 'empty' };
    if (requested && !requested.includes(pathStudyUid)) return { kind: 'empty' };
    return { kind: 'single', studyUids: [pathStudyUid] };
  }
  const candidates = requested
    ? [...new Set(requested)].filter((u) => scope.studies.has(u))
    : [...scope.studies.keys()].sort();
  if (candidates.length === 0) return { kind: 'empty' };
  if (candidates.length <= maxUids) return { kind: 'single', studyUids: candidates };
  const chunks: string[][] = [];
  for (let i = 0; i < candidates.length; i += maxUids) chunks.push(candidates.slice(i, i + maxUids));
  return { kind: 'chunks', chunks };
}

/**
 * Merges the complete answers of disjoint chunks, orders them by `key` (ties keep chunk order) and returns the page
 * `[offset, offset + limit)`.
 */
export function pageOfMerged<T>(
  parts: readonly (readonly T[])[],
  key: (item: T) => string,
  offset: number,
  limit?: number,
): T[] {
  const all = parts.flat();
  const keyed = all.map((item, i) => ({ item, k: key(item), i }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i));
  const end = limit === undefined ? undefined : offset + limit;
  return keyed.slice(offset, end).map((x) => x.item);
}

/** The merge order of QIDO results: study, series, instance UIDs (DICOM JSON), whichever are present. */
export function qidoSortKey(item: Record<string, { Value?: unknown[] } | undefined>): string {
  const v = (tag: string) => String(item[tag]?.Value?.[0] ?? '');
  return `${v('0020000D')}|${v('0020000E')}|${v('00080018')}`;
}

/** The tags chunked mode adds to each chunk's query so that {@link qidoSortKey} is defined. */
export const SORT_TAGS = ['0020000D', '0020000E', '00080018'] as const;
