import type { OrthancClient } from '../orthanc/client.ts';
import {
  deleteInstance,
  getStudy,
  lookupStudies,
  modifyInstance,
  storeInstance,
  studyInstanceIds,
} from '../orthanc/changes.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * Correcting PatientID and AccessionNumber of a study in Orthanc 1.10.1 while keeping its UIDs.
 *
 * Orthanc refuses to change PatientID with `/studies/{id}/modify` ("the parent PatientID cannot be manually
 * modified"), and a modified instance whose Orthanc id is unchanged (same PatientID + UIDs) cannot be stored without
 * `OverwriteInstances`. So each instance goes through `/instances/{id}/modify` (`Replace`, `Keep` of
 * Study/Series/SOP Instance UIDs, `Force`), the modified copy is stored, and only then is the original deleted:
 * at every moment each instance exists in Orthanc at least once. When PatientID does not change, the copies first go
 * to a temporary PatientID and then to the final one (two passes), because the final Orthanc ids equal the originals.
 * Every pass is restartable: it moves whatever is still in its source study.
 */

/** PatientID prefix of the temporary copies (`EHR-RELINK-<queue item id>`). */
export const TRANSIT_PREFIX = 'EHR-RELINK-';

export type RelinkPhase = 'to-temporary' | 'to-final';

/** Orthanc did not end up with the corrected study. */
export class RelinkError extends EhrError {
  override readonly code: ErrorCode = 'EHR_RELINK';
  override name = 'RelinkError';
}

/** The first pass: through a temporary copy when the PatientID stays the same. */
export function firstPhase(currentPatientId: string | null | undefined, targetMrn: string): RelinkPhase {
  return (currentPatientId ?? '') === targetMrn ? 'to-temporary' : 'to-final';
}

/** The Orthanc study with this StudyInstanceUID and PatientID, if any. */
export async function findStudy(orthanc: OrthancClient, uid: string, patientId: string): Promise<string | undefined> {
  for (const id of await lookupStudies(orthanc, uid)) {
    const study = await getStudy(orthanc, id);
    if (study?.PatientMainDicomTags['PatientID'] === patientId) return id;
  }
  return undefined;
}

async function moveInstances(orthanc: OrthancClient, from: string, replace: Record<string, string>): Promise<void> {
  for (const id of await studyInstanceIds(orthanc, from)) {
    const dicom = await modifyInstance(orthanc, id, replace);
    const stored = await storeInstance(orthanc, dicom);
    if (stored.ID === id) throw new RelinkError(`modified copy of instance ${id} has its original Orthanc id`);
    await deleteInstance(orthanc, id);
  }
}

export interface RelinkJob {
  itemId: string;
  studyInstanceUid: string;
  /** The Orthanc study as queued. */
  orthancStudyId: string;
  phase: RelinkPhase;
  /** The PatientID stays the same, so the copies pass through a temporary PatientID. */
  viaTemporary: boolean;
  mrn: string;
  accessionNumber: string;
}

/**
 * Runs (or resumes) the correction and returns the Orthanc id of the corrected study. `savePhase` persists progress
 * between the two passes.
 */
export async function relinkInOrthanc(
  orthanc: OrthancClient,
  job: RelinkJob,
  savePhase: (phase: RelinkPhase) => Promise<void>,
): Promise<string> {
  const final = { PatientID: job.mrn, AccessionNumber: job.accessionNumber };
  const temporaryId = transitPatientId(job.itemId);
  if (job.phase === 'to-temporary') {
    await moveInstances(orthanc, job.orthancStudyId, { ...final, PatientID: temporaryId });
    await savePhase('to-final');
  }
  // The source of the final pass: the temporary copy, or the study as queued (whose Orthanc id differs from the
  // corrected one because its PatientID does).
  const source = job.viaTemporary ? await findStudy(orthanc, job.studyInstanceUid, temporaryId) : job.orthancStudyId;
  if (source) await moveInstances(orthanc, source, final);
  const corrected = await findStudy(orthanc, job.studyInstanceUid, job.mrn);
  if (!corrected) throw new RelinkError(`Orthanc has no study ${job.studyInstanceUid} for PatientID ${job.mrn}`);
  return corrected;
}

/** The temporary PatientID of an item's copies in transit. */
export function transitPatientId(itemId: string): string {
  return `${TRANSIT_PREFIX}${itemId}`.slice(0, 64);
}

export interface RestoreJob {
  itemId: string;
  studyInstanceUid: string;
  /** PatientID and AccessionNumber as queued (empty when the study had none). */
  original: { patientId: string; accessionNumber: string };
  /** PatientIDs under which a failed re-link may have left copies (the target's MRN). */
  holders: readonly string[];
}

/**
 * Rolls a re-link back in Orthanc: every copy the re-link made (under the target's MRN, or the temporary PatientID)
 * goes back under the PatientID and AccessionNumber as queued, keeping the UIDs. Like the re-link itself, it passes
 * through the temporary PatientID (so that copies whose Orthanc id would equal their source's can be stored), never
 * deletes an instance before its copy is stored, and is restartable at any point: a second run moves whatever the
 * first one left. Returns the Orthanc id of the restored study, if it holds any instance.
 */
export async function restoreInOrthanc(orthanc: OrthancClient, job: RestoreJob): Promise<string | undefined> {
  const temporaryId = transitPatientId(job.itemId);
  const back = { PatientID: job.original.patientId, AccessionNumber: job.original.accessionNumber };
  for (const holder of new Set(job.holders)) {
    if (holder === temporaryId) continue;
    const id = await findStudy(orthanc, job.studyInstanceUid, holder);
    if (id) await moveInstances(orthanc, id, { ...back, PatientID: temporaryId });
  }
  const transit = await findStudy(orthanc, job.studyInstanceUid, temporaryId);
  if (transit) await moveInstances(orthanc, transit, back);
  return findStudy(orthanc, job.studyInstanceUid, job.original.patientId);
}
