/**
 * SMART v2 granular restrictions of the caller's ImagingStudy rights (e.g. `user/ImagingStudy.rs?modality=CT`,
 * https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#finer-grained-resource-constraints-using-search-parameters)
 * as a constraint on the EHR's study index, so that "one policy covers both FHIR and DICOMweb".
 *
 * Only `modality` is supported on the DICOMweb side (token form `code`, `system|code`, `|code`, `system|`; comma-OR
 * lists; several `modality` restrictions are ANDed). The condition is built by the FHIR search code itself
 * (`parseSearch` + `conditionSql`, exactly what the FHIR repository does for the same restrictions) over the
 * `search_token` index of ImagingStudy `modality` (`ImagingStudy.series.modality`), so both sides agree on which
 * studies match. Any other parameter or modifier fails closed: the caller sees no DICOMweb data. Pure: no I/O.
 */
import { type FragmentSqlToken, sql } from 'slonik';
import type { SearchRestriction } from '../../auth/access.ts';
import { IMAGING_TYPE } from '../../auth/imaging-access.ts';
import { parseSearch } from '../../fhir/search/parse.ts';
import { conditionSql } from '../../fhir/search/sql.ts';

/** The restriction parameters the DICOMweb side can apply; anything else denies. */
export const SUPPORTED_STUDY_RESTRICTIONS: readonly string[] = ['modality'];

export type StudyRestriction =
  /** No restriction: the patient filter alone decides. */
  | { readonly kind: 'none' }
  /** Restrictions the DICOMweb side cannot apply: the caller sees nothing (fail closed). */
  | { readonly kind: 'deny'; readonly reason: string }
  /**
   * A condition over `imaging_studies` aliased `r`, ANDed into the study-index queries. `key` identifies the
   * restriction set (order-independent) for cache keys.
   */
  | { readonly kind: 'sql'; readonly key: string; readonly condition: FragmentSqlToken };

export const UNRESTRICTED: StudyRestriction = { kind: 'none' };

const NOTHING = sql.fragment`FALSE`;

/** Turns the caller's ImagingStudy restrictions (from `imagingAccess(access).restrictions()`) into a study constraint. */
export function studyRestriction(list: readonly SearchRestriction[]): StudyRestriction {
  if (list.length === 0) return UNRESTRICTED;
  const unsupported = list.find((r) => !SUPPORTED_STUDY_RESTRICTIONS.includes(r.code));
  if (unsupported) {
    return { kind: 'deny', reason: `restriction "${unsupported.code.slice(0, 64)}" is not supported for DICOMweb` };
  }
  const query: Record<string, string[]> = {};
  for (const r of list) query[r.code] = [...(query[r.code] ?? []), r.value];
  let conditions: FragmentSqlToken[];
  try {
    const plan = parseSearch(IMAGING_TYPE, query, { strict: true, defaultCount: 1, maxCount: 1 });
    conditions = plan.conditions.map((c) => conditionSql(IMAGING_TYPE, c, () => NOTHING));
  } catch {
    return { kind: 'deny', reason: 'restriction value not understood' };
  }
  if (conditions.length === 0) return { kind: 'deny', reason: 'restriction yields no condition' };
  const key = JSON.stringify(list.map((r) => [r.code, r.value]).sort(compareKeys));
  return { kind: 'sql', key, condition: sql.fragment`(${sql.join(conditions, sql.fragment` AND `)})` };
}

/**
 * ANDs a study limit (a viewer token's studies, `ImagingAccess.studies()`) into a restriction: only ImagingStudy
 * rows with one of these StudyInstanceUIDs match. No limit: the restriction unchanged.
 */
export function withStudyLimit(r: StudyRestriction, studies: readonly string[] | undefined): StudyRestriction {
  if (studies === undefined || r.kind === 'deny') return r;
  const only = sql.fragment`r.study_instance_uid = ANY(${sql.array([...studies], 'text')})`;
  const limit = `studies:${JSON.stringify([...studies].sort())}`;
  if (r.kind === 'none') return { kind: 'sql', key: limit, condition: only };
  return { kind: 'sql', key: `${r.key}|${limit}`, condition: sql.fragment`(${r.condition} AND ${only})` };
}

function compareKeys(a: string[], b: string[]): number {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
