/**
 * The Orthanc studies a restricted caller may search or retrieve: under each allowed StudyInstanceUID, only the one(s)
 * the EHR links.
 *
 * Orthanc identifies a study by PatientID + StudyInstanceUID (https://orthanc.uclouvain.be/book/faq/orthanc-ids.html,
 * src/orthanc/orthanc-ids.ts), so one UID can name several Orthanc studies: the linked one and, say, a C-STORE of the
 * same UID under another MRN or a held STOW-RS. Orthanc's DICOMweb plugin (1.7) matches the StudyInstanceUID of QIDO-RS
 * against all of them and resolves WADO-RS paths by UID. The EHR links a UID to one ImagingStudy row
 * (`imaging_studies.study_instance_uid` is unique) of one patient; which Orthanc study that is:
 * - the row's `orthanc_study_id` when the EHR recorded it (STOW-RS and change-feed links, kept by FHIR updates: a
 *   study moved to another patient through the FHIR API stays the same Orthanc study);
 * - otherwise (a link made through the FHIR API alone) the Orthanc studies whose PatientID is one of the linked
 *   patient's identifiers (its MRN, which is what STOW-RS and the change feed match PatientID against,
 *   src/imaging/matching.ts, and its other `Patient.identifier` values).
 * A {@link LinkedStudy} holds both forms: the Orthanc study ids, and the PatientIDs known to name them.
 *
 * How a QIDO-RS search keeps to them, cheaply:
 * - the Orthanc query gets the PatientID as a matching key (PS3.18 §8.3.4, single value matching, PS3.4 §C.2.2.2.1)
 *   when all its studies have one and the same known PatientID and the caller gives none ({@link linkedQuery}):
 *   Orthanc then pages over the right set and sends nothing else, at no extra cost (PatientID is an indexed
 *   identifier). Otherwise the query only includes PatientID (and StudyInstanceUID);
 * - every answer is then kept only if it is one of a linked Orthanc study ({@link isLinkedAnswer}): its PatientID is a
 *   known one (exact comparison), else its Orthanc study id (computed) is the recorded one. The filter is needed
 *   anyway: Orthanc matches identifiers case-insensitively (seen on 1.10.1: `PatientID=MRN-A` matches a study stored
 *   under `mrn-a`), a caller's own PatientID key cannot be combined with ours in one query, and several patients'
 *   UIDs cannot be paired with their PatientIDs in one query.
 * Pure: no I/O.
 */
import { orthancId } from '../../orthanc/orthanc-ids.ts';
import { orthancEncode, type QidoQuery, STUDY_UID_TAG } from '../qido-query.ts';

/** The Orthanc studies linked under one StudyInstanceUID. */
export interface LinkedStudy {
  /** Their Orthanc ids (one when the EHR recorded it). Never empty. */
  readonly orthancIds: ReadonlySet<string>;
  /** PatientIDs (0010,0020) known to name one of them (usually the MRN); empty when only the id is known. */
  readonly patientIds: readonly string[];
}

/** StudyInstanceUID → the Orthanc studies under it that the caller may see. */
export type LinkedStudies = ReadonlyMap<string, LinkedStudy>;

/** The studies a caller may search: every study, or only these linked ones (the QIDO planner's input, qido/paging.ts). */
export type StudyScope = { readonly all: true } | { readonly all: false; readonly studies: LinkedStudies };

export const PATIENT_ID_TAG = '00100020';
/** PatientID is a LO: at most 64 characters (PS3.5 §6.2). */
const MAX_LO = 64;

type DicomJson = Record<string, { Value?: unknown[] } | undefined>;

/**
 * The linked Orthanc studies of an ImagingStudy row: the recorded Orthanc study, or else those named by the patient's
 * identifiers (see the module comment); undefined when there is neither (nothing can be read).
 */
export function linkedStudy(
  studyUid: string,
  orthancStudyId: string | null | undefined,
  identifiers: readonly string[],
): LinkedStudy | undefined {
  const values = [...new Set(identifiers.filter((v) => v.length > 0))];
  if (orthancStudyId) {
    const patientIds = values.filter((v) => orthancId({ patientId: v, study: studyUid }) === orthancStudyId);
    return { orthancIds: new Set([orthancStudyId]), patientIds };
  }
  if (values.length === 0) return undefined;
  return { orthancIds: new Set(values.map((v) => orthancId({ patientId: v, study: studyUid }))), patientIds: values };
}

/**
 * Can `value` be sent to Orthanc as an exact PatientID matching key? Not when it would match more (wildcards `*` `?`,
 * a backslash or comma turning it into a list) nor when Orthanc would see another value (characters that must be
 * percent-encoded, which Orthanc 1.10 does not decode: see `orthancEncode`). Such PatientIDs are only post-filtered.
 */
export function isPlainPatientId(value: string): boolean {
  return value.length > 0 && value.length <= MAX_LO && !/[*?\\,]/.test(value) && orthancEncode(value) === value;
}

/** The one PatientID that names every linked Orthanc study of these UIDs, if there is one. */
function sharedPatientId(studyUids: readonly string[], linked: LinkedStudies): string | undefined {
  let shared: string | undefined;
  for (const uid of studyUids) {
    const s = linked.get(uid);
    if (s?.patientIds.length !== 1 || s.orthancIds.size !== 1) return undefined;
    if (shared !== undefined && s.patientIds[0] !== shared) return undefined;
    shared = s.patientIds[0];
  }
  return shared;
}

/** The Orthanc query for a restricted search over `studyUids` (all in `linked`), and the tags it must include. */
export function linkedQuery(
  query: QidoQuery,
  studyUids: readonly string[],
  linked: LinkedStudies,
): { query: QidoQuery; include: readonly string[] } {
  const patientId = sharedPatientId(studyUids, linked);
  const callerGivesOne = query.match.some(([tag]) => tag === PATIENT_ID_TAG);
  if (patientId !== undefined && !callerGivesOne && isPlainPatientId(patientId)) {
    return { query: { ...query, match: [...query.match, [PATIENT_ID_TAG, patientId]] }, include: [STUDY_UID_TAG] };
  }
  return { query, include: [STUDY_UID_TAG, PATIENT_ID_TAG] };
}

/** Is this QIDO-RS answer (DICOM JSON) one of a linked Orthanc study? Exact; missing values deny. */
export function isLinkedAnswer(item: DicomJson, linked: LinkedStudies): boolean {
  const uid = item[STUDY_UID_TAG]?.Value?.[0];
  const patientId = item[PATIENT_ID_TAG]?.Value?.[0];
  if (typeof uid !== 'string' || typeof patientId !== 'string') return false;
  const study = linked.get(uid);
  if (!study) return false;
  return study.patientIds.includes(patientId) || study.orthancIds.has(orthancId({ patientId, study: uid }));
}

/** The answers of linked Orthanc studies, in order, and how many others were withheld. */
export function keepLinked<T extends DicomJson>(
  items: readonly T[],
  linked: LinkedStudies,
): { kept: T[]; withheld: number } {
  const kept = items.filter((i) => isLinkedAnswer(i, linked));
  return { kept, withheld: items.length - kept.length };
}
