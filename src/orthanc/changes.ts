import type { OrthancClient } from './client.ts';
import { OrthancHttpError } from './errors.ts';

/**
 * The parts of Orthanc's REST API that the change-feed consumer and the reconciliation of unmatched studies use
 * (https://orthanc.uclouvain.be/api/): `/changes`, study and instance reads, instance-level modification, store and
 * delete. Kept apart from {@link OrthancClient} so that the client file stays small and shared.
 */

/** One entry of `GET /changes` (Orthanc's ChangeType names, e.g. `StableStudy`). */
export interface OrthancChange {
  ChangeType: string;
  Date: string;
  ID: string;
  Path: string;
  ResourceType: string;
  Seq: number;
}

/** `GET /changes?since=N&limit=M`: changes with `Seq > since`; `Last` is the last returned (or the latest) seq. */
export interface OrthancChangesPage {
  Changes: OrthancChange[];
  Done: boolean;
  Last: number;
}

/** Subset of `GET /studies/{id}`. */
export interface OrthancStudy {
  ID: string;
  ParentPatient: string;
  Series: string[];
  IsStable: boolean;
  LastUpdate?: string;
  MainDicomTags: Record<string, string | undefined>;
  PatientMainDicomTags: Record<string, string | undefined>;
}

/** Answer of `POST /instances`. */
export interface OrthancStoreResult {
  ID: string;
  ParentStudy: string;
  ParentSeries: string;
  ParentPatient: string;
  Status: string;
}

/** Tags kept when the facade corrects an instance: the original UIDs (PS3.3 C.12.1, C.7.2.1, C.7.3.1). */
export const KEEP_ORIGINAL_UIDS = ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID'] as const;

async function jsonOrUndefined<T>(orthanc: OrthancClient, path: string): Promise<T | undefined> {
  try {
    return await orthanc.getJson<T>(path);
  } catch (err) {
    if (err instanceof OrthancHttpError && err.orthancStatus === 404) return undefined;
    throw err;
  }
}

async function send(orthanc: OrthancClient, method: string, path: string, body?: string | Uint8Array, type?: string) {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (type) headers['content-type'] = type;
  const res = await orthanc.request(
    path,
    body === undefined ? { method, headers } : { method, headers, body: body as Uint8Array<ArrayBuffer> | string },
  );
  if (!res.ok) {
    await res.body?.cancel();
    throw new OrthancHttpError(res.status, path);
  }
  return res;
}

export function getChanges(orthanc: OrthancClient, since: number, limit: number): Promise<OrthancChangesPage> {
  return orthanc.getJson<OrthancChangesPage>(`/changes?since=${since}&limit=${limit}`);
}

/** The study, or `undefined` when Orthanc no longer has it. */
export function getStudy(orthanc: OrthancClient, id: string): Promise<OrthancStudy | undefined> {
  return jsonOrUndefined<OrthancStudy>(orthanc, `/studies/${encodeURIComponent(id)}`);
}

/** Number of instances in the study (`/studies/{id}/statistics`), or `undefined` when the study is gone. */
export async function countStudyInstances(orthanc: OrthancClient, id: string): Promise<number | undefined> {
  const stats = await jsonOrUndefined<{ CountInstances: number }>(
    orthanc,
    `/studies/${encodeURIComponent(id)}/statistics`,
  );
  return stats === undefined ? undefined : Number(stats.CountInstances);
}

/** Orthanc ids of the study's instances (empty when the study is gone). */
export async function studyInstanceIds(orthanc: OrthancClient, id: string): Promise<string[]> {
  const list = await jsonOrUndefined<{ ID: string }[]>(orthanc, `/studies/${encodeURIComponent(id)}/instances`);
  return (list ?? []).map((i) => i.ID);
}

/** Modalities of the study's series (from each series' main tags). */
export async function studyModalities(orthanc: OrthancClient, id: string): Promise<string[]> {
  const series = await jsonOrUndefined<{ MainDicomTags: { Modality?: string } }[]>(
    orthanc,
    `/studies/${encodeURIComponent(id)}/series`,
  );
  return [...new Set((series ?? []).map((s) => s.MainDicomTags.Modality).filter((m): m is string => !!m))];
}

/** Orthanc study ids whose StudyInstanceUID is `uid` (`POST /tools/lookup`). */
export async function lookupStudies(orthanc: OrthancClient, uid: string): Promise<string[]> {
  const res = await send(orthanc, 'POST', '/tools/lookup', uid, 'text/plain');
  const found = (await res.json()) as { ID: string; Type: string }[];
  return found.filter((f) => f.Type === 'Study').map((f) => f.ID);
}

/**
 * `POST /instances/{id}/modify` with `Replace`, `Keep` of the original UIDs and `Force` (needed to keep the
 * SOPInstanceUID): returns the modified DICOM file without storing it.
 */
export async function modifyInstance(
  orthanc: OrthancClient,
  id: string,
  replace: Record<string, string>,
): Promise<Uint8Array> {
  const body = JSON.stringify({ Replace: replace, Keep: KEEP_ORIGINAL_UIDS, Force: true });
  const res = await send(orthanc, 'POST', `/instances/${encodeURIComponent(id)}/modify`, body, 'application/json');
  return new Uint8Array(await res.arrayBuffer());
}

export async function storeInstance(orthanc: OrthancClient, dicom: Uint8Array): Promise<OrthancStoreResult> {
  const res = await send(orthanc, 'POST', '/instances', dicom, 'application/dicom');
  return (await res.json()) as OrthancStoreResult;
}

/** Deletes an instance; an instance that is already gone is not an error. */
export async function deleteInstance(orthanc: OrthancClient, id: string): Promise<void> {
  try {
    await send(orthanc, 'DELETE', `/instances/${encodeURIComponent(id)}`);
  } catch (err) {
    if (!(err instanceof OrthancHttpError && err.orthancStatus === 404)) throw err;
  }
}

/** All study ids, paged with `since`/`limit` so that a large archive is not one huge answer. */
export async function allStudyIds(orthanc: OrthancClient, pageSize = 5000): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let since = 0; ; since += pageSize) {
    const page = await orthanc.getJson<string[]>(`/studies?since=${since}&limit=${pageSize}`);
    for (const id of page) ids.add(id);
    if (page.length < pageSize) return ids;
  }
}

/** Every instance's tags, keyed by Orthanc instance id, tags keyed `gggg,eeee` (`/studies/{id}/instances-tags?short`). */
export async function studyInstanceTags(
  orthanc: OrthancClient,
  id: string,
): Promise<Record<string, Record<string, unknown>>> {
  return (await jsonOrUndefined(orthanc, `/studies/${encodeURIComponent(id)}/instances-tags?short`)) ?? {};
}

/** Seq of Orthanc's latest change (`/changes?last`). */
export async function lastChangeSeq(orthanc: OrthancClient): Promise<number> {
  return (await orthanc.getJson<OrthancChangesPage>('/changes?last')).Last;
}
