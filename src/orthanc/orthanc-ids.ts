/**
 * Orthanc's resource identifiers, computed as Orthanc computes them (Orthanc Book, "Orthanc identifiers",
 * https://orthanc.uclouvain.be/book/faq/orthanc-ids.html; `DicomInstanceHasher` in the Orthanc sources): the SHA-1 of
 * the DICOM identifiers of the resource and its parents joined with `|`, as five dash-separated groups of 8 lower-case
 * hex digits:
 *   patient  = SHA-1(PatientID)
 *   study    = SHA-1(PatientID|StudyInstanceUID)
 *   series   = SHA-1(PatientID|StudyInstanceUID|SeriesInstanceUID)
 *   instance = SHA-1(PatientID|StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID)
 * So one StudyInstanceUID under two PatientIDs is two Orthanc studies, and knowing the PatientID of the EHR's linked
 * study is knowing which Orthanc resources belong to it, without asking Orthanc. Pure: no I/O.
 */
import { createHash } from 'node:crypto';

/** The DICOM identifiers of a resource, from the patient down; absent levels end the path. */
export interface DicomPath {
  /** PatientID (0010,0020) as Orthanc stores it (no padding). */
  readonly patientId: string;
  readonly study?: string | undefined;
  readonly series?: string | undefined;
  readonly instance?: string | undefined;
}

/** Orthanc's id of the deepest resource named by `path` (a series needs its study, an instance its series). */
export function orthancId(path: DicomPath): string {
  const parts = [path.patientId];
  for (const uid of [path.study, path.series, path.instance]) {
    if (uid === undefined) break;
    parts.push(uid);
  }
  const hex = createHash('sha1').update(parts.join('|'), 'utf8').digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 16)}-${hex.slice(16, 24)}-${hex.slice(24, 32)}-${hex.slice(32)}`;
}
