import type { OrthancClient } from '../orthanc/client.ts';
import { studyInstanceIds, studyInstanceTags } from '../orthanc/changes.ts';
import { OrthancHttpError } from '../orthanc/errors.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * Reading the tags of every instance of a stored study, for matching. What Orthanc could not read is never taken for
 * what the instances lack: an empty or short answer (Orthanc's study-level `instances-tags` answers 404 or leaves
 * instances out when one of them cannot be read, e.g. right after its database came back) is read again instance by
 * instance, and when no instance can be read at all the change fails with {@link StudyReadError} and is retried,
 * instead of queueing the study as `missing-identifiers`.
 */

type ShortTags = Record<string, unknown>;

/** Orthanc lists instances of the study but gave the tags of none of them: a transient state, retry later. */
export class StudyReadError extends EhrError {
  override readonly code: ErrorCode = 'EHR_CHANGE_FEED_STUDY_READ';
  override name = 'StudyReadError';
}

async function instanceTags(orthanc: OrthancClient, id: string): Promise<ShortTags | undefined> {
  try {
    return await orthanc.getJson<ShortTags>(`/instances/${encodeURIComponent(id)}/tags?short`);
  } catch (err) {
    if (err instanceof OrthancHttpError && err.orthancStatus === 404) return undefined;
    throw err;
  }
}

/**
 * The tags (`gggg,eeee` keys) of the study's instances. `expected` is the instance count Orthanc reported for the
 * study just before; fewer answers than that trigger the per-instance read.
 */
export async function readStudyTags(
  orthanc: OrthancClient,
  orthancStudyId: string,
  expected: number,
): Promise<ShortTags[]> {
  const all = Object.values(await studyInstanceTags(orthanc, orthancStudyId));
  if (all.length >= expected && all.length > 0) return all;
  const ids = await studyInstanceIds(orthanc, orthancStudyId);
  const each: ShortTags[] = [];
  for (const id of ids) {
    const tags = await instanceTags(orthanc, id);
    if (tags) each.push(tags);
  }
  const best = each.length > all.length ? each : all;
  if (best.length === 0) {
    throw new StudyReadError(
      `Orthanc reported ${expected} instance(s) in study ${orthancStudyId} (listed ${ids.length}) but gave the tags of none`,
    );
  }
  return best;
}
