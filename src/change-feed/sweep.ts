import { sql } from 'slonik';
import { allStudyIds, countStudyInstances, getStudy } from '../orthanc/changes.ts';
import type { StudyDecision } from './classify.ts';
import { type IndexDeps, indexSweptStudy } from './index-study.ts';

/**
 * The orphan sweep: Orthanc studies (or instances) the EHR has not accounted for. A StableStudy change is the feed's
 * usual trigger, but Orthanc keeps its stability timers in memory: instances stored just before Orthanc stopped (or
 * while PostgreSQL was down, so that the upload's EHR transaction never committed and could not undo them) may never
 * get one. The sweep finds every stable Orthanc study that is neither linked, nor queued, nor indexed by the feed,
 * and (with `compareCounts`, after an outage) every known study that holds more instances in Orthanc than the EHR
 * counted, and indexes it like a change: linked when it matches, queued with its true reason otherwise.
 */

export interface OrphanSweepResult {
  checked: number;
  indexed: Partial<Record<StudyDecision, number>>;
}

/** What the EHR counted per Orthanc study: linked ImagingStudies, open queue items and studies the feed indexed. */
async function knownCounts(deps: IndexDeps): Promise<Map<string, number>> {
  const rows = (await deps.db.any(sql.unsafe`
    SELECT orthanc_study_id, max(n)::int AS n FROM (
      SELECT orthanc_study_id, coalesce((content->>'numberOfInstances')::int, 0) AS n FROM imaging_studies
        WHERE NOT deleted AND orthanc_study_id IS NOT NULL AND content->>'status' <> 'entered-in-error'
      UNION ALL
      SELECT orthanc_study_id, coalesce(number_of_instances, 0) FROM dicom_unmatched
        WHERE status IN ('pending', 'relinking', 'rejected')
      UNION ALL
      SELECT orthanc_study_id, instances FROM change_feed_studies
    ) k GROUP BY orthanc_study_id`)) as readonly { orthanc_study_id: string; n: number }[];
  return new Map(rows.map((r) => [r.orthanc_study_id, r.n]));
}

/** One sweep (the caller holds leadership). `limit` bounds the studies indexed per sweep. */
export async function sweepOrphans(
  deps: IndexDeps,
  opts: { compareCounts: boolean; limit: number; notBefore?: Date | undefined },
): Promise<OrphanSweepResult> {
  const known = await knownCounts(deps);
  const inOrthanc = await allStudyIds(deps.orthanc);
  const result: OrphanSweepResult = { checked: 0, indexed: {} };
  let budget = opts.limit;
  for (const id of inOrthanc) {
    if (budget <= 0) break;
    const counted = known.get(id);
    if (counted !== undefined && !opts.compareCounts) continue;
    // A study still receiving instances gets its StableStudy change: leave it to the consumer. One last updated
    // before the feed's start (`latest`: only what arrives from then on) is not the feed's to index.
    const study = await getStudy(deps.orthanc, id);
    if (!study?.IsStable || updatedBefore(study.LastUpdate, opts.notBefore)) continue;
    if (counted !== undefined) {
      result.checked++;
      const now = await countStudyInstances(deps.orthanc, id);
      if (now === undefined || now <= counted) continue;
    }
    budget--;
    const decision = await indexSweptStudy(deps, id);
    result.indexed[decision] = (result.indexed[decision] ?? 0) + 1;
  }
  return result;
}

/** Whether Orthanc's `LastUpdate` (`YYYYMMDDTHHMMSS`, UTC) is before `notBefore` (false when either is unknown). */
export function updatedBefore(lastUpdate: string | undefined, notBefore: Date | undefined): boolean {
  if (!notBefore || !lastUpdate) return false;
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(lastUpdate);
  if (!m) return false;
  const [, y, mo, d, h, mi, se] = m.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, se) < notBefore.getTime();
}
