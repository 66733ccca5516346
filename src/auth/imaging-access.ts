/**
 * The one question the DICOMweb side asks: "may this caller read or write imaging of patient X, and which patients may
 * it see?". Imaging is governed by the FHIR ImagingStudy rights of the caller (the DICOM study is the ImagingStudy's
 * content), including SMART v2 `ImagingStudy?modality=` restrictions. Pure: it only consults {@link Access}.
 */
import { type Access, allowsPatient, type PatientFilter, type SearchRestriction } from './access.ts';

export const IMAGING_TYPE = 'ImagingStudy';

export interface ImagingAccess {
  /** May the caller read (WADO-RS, QIDO-RS) imaging of this patient? */
  mayRead(patientId: string): boolean;
  /** May the caller store (STOW-RS) or change imaging of this patient? */
  mayWrite(patientId: string): boolean;
  /** May the caller delete imaging of this patient? */
  mayDelete(patientId: string): boolean;
  /** Which patients' imaging the caller may see (apply before paging), or `{all:false, patientIds:[]}` for none. */
  readablePatients(): PatientFilter;
  /** Extra restrictions such as `modality=CT` from granular scopes; empty when none. */
  restrictions(): readonly SearchRestriction[];
  /** The StudyInstanceUIDs a viewer token is limited to; undefined for every other caller. */
  studies(): readonly string[] | undefined;
  /**
   * Does the caller's study limit exclude one of these study UIDs (from the path or a QIDO-RS StudyInstanceUID match)?
   * A search naming a study outside a viewer token's study answers the uniform 404, as a retrieve of it does.
   */
  excludesAny(studyUids: readonly (string | undefined)[]): boolean;
}

export function imagingAccess(access: Access): ImagingAccess {
  return {
    mayRead: (patientId) =>
      allowsPatient(access, 'read', IMAGING_TYPE, patientId) ||
      allowsPatient(access, 'search', IMAGING_TYPE, patientId),
    mayWrite: (patientId) =>
      allowsPatient(access, 'create', IMAGING_TYPE, patientId) ||
      allowsPatient(access, 'update', IMAGING_TYPE, patientId),
    mayDelete: (patientId) => allowsPatient(access, 'delete', IMAGING_TYPE, patientId),
    readablePatients: () =>
      access.allows('search', IMAGING_TYPE)
        ? access.patientFilter('search', IMAGING_TYPE)
        : access.allows('read', IMAGING_TYPE)
          ? access.patientFilter('read', IMAGING_TYPE)
          : { all: false, patientIds: [] },
    restrictions: () => access.restrictions(IMAGING_TYPE),
    studies: () => access.studies,
    excludesAny: (uids) => {
      const limit = access.studies;
      return limit !== undefined && uids.some((u) => u !== undefined && !limit.includes(u));
    },
  };
}
