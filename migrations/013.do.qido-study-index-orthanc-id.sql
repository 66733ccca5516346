-- QIDO study index (008): the Orthanc study id of each stored answer (the SHA-1 of PatientID|StudyInstanceUID, as
-- Orthanc computes it: src/orthanc/orthanc-ids.ts), written by the fill. Orthanc may hold several studies under one
-- StudyInstanceUID (other PatientIDs: a C-STORE under another MRN, a held STOW-RS) and a fill stores all of their
-- answers; a search returns only the answer of the Orthanc study the EHR links (imaging_studies.orthanc_study_id, or
-- for links without one the PatientIDs of the patient's identifiers: src/dicomweb/linked-studies.ts).
ALTER TABLE qido_study_answers ADD COLUMN orthanc_study_id text;

-- Answers stored before this migration have no id: every study is fetched again.
UPDATE qido_study_fills SET epoch = epoch + 1;
