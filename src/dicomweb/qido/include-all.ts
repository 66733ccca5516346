/**
 * What `includefield=all` expands to at each QIDO-RS level. Orthanc 1.7 ignores `all`, so the facade asks for these
 * tags by name: the required and optional return attributes of DICOM PS3.18 Tables 10.6.3-3/-4/-5 plus the
 * attributes Orthanc indexes ("main DICOM tags"). A series search includes the study attributes and an instance
 * search the study and series ones (PS3.18 §10.6.3.3.1: "all available attributes" of the matched entity).
 */
const STUDY = [
  '00080005', // SpecificCharacterSet
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080056', // InstanceAvailability
  '00080061', // ModalitiesInStudy
  '00080062', // SOPClassesInStudy
  '00080080', // InstitutionName
  '00080090', // ReferringPhysicianName
  '00080201', // TimezoneOffsetFromUTC
  '00081030', // StudyDescription
  '00081060', // NameOfPhysiciansReadingStudy
  '00081190', // RetrieveURL
  '00100010', // PatientName
  '00100020', // PatientID
  '00100021', // IssuerOfPatientID
  '00100030', // PatientBirthDate
  '00100040', // PatientSex
  '00101010', // PatientAge
  '00101020', // PatientSize
  '00101030', // PatientWeight
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
  '00201206', // NumberOfStudyRelatedSeries
  '00201208', // NumberOfStudyRelatedInstances
  '00321032', // RequestingPhysician
  '00321060', // RequestedProcedureDescription
];

const SERIES = [
  '00080021', // SeriesDate
  '00080031', // SeriesTime
  '00080060', // Modality
  '00080070', // Manufacturer
  '00081010', // StationName
  '0008103E', // SeriesDescription
  '00081070', // OperatorsName
  '00081090', // ManufacturerModelName
  '00180015', // BodyPartExamined
  '00181030', // ProtocolName
  '00185100', // PatientPosition
  '0020000E', // SeriesInstanceUID
  '00200011', // SeriesNumber
  '00200052', // FrameOfReferenceUID
  '00200060', // Laterality
  '00201209', // NumberOfSeriesRelatedInstances
  '00400244', // PerformedProcedureStepStartDate
  '00400245', // PerformedProcedureStepStartTime
  '00400275', // RequestAttributesSequence
];

const INSTANCE = [
  '00080008', // ImageType
  '00080016', // SOPClassUID
  '00080018', // SOPInstanceUID
  '00080022', // AcquisitionDate
  '00080023', // ContentDate
  '00080032', // AcquisitionTime
  '00080033', // ContentTime
  '00180050', // SliceThickness
  '00200012', // AcquisitionNumber
  '00200013', // InstanceNumber
  '00200032', // ImagePositionPatient
  '00200037', // ImageOrientationPatient
  '00201041', // SliceLocation
  '00280002', // SamplesPerPixel
  '00280004', // PhotometricInterpretation
  '00280008', // NumberOfFrames
  '00280010', // Rows
  '00280011', // Columns
  '00280030', // PixelSpacing
  '00280100', // BitsAllocated
  '00280101', // BitsStored
  '00280103', // PixelRepresentation
  '00281050', // WindowCenter
  '00281051', // WindowWidth
];

export const INCLUDE_ALL: Readonly<Record<'study' | 'series' | 'instance', readonly string[]>> = {
  study: STUDY,
  series: [...STUDY, ...SERIES],
  instance: [...STUDY, ...SERIES, ...INSTANCE],
};
