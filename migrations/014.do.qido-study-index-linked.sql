-- QIDO study index (008, 013): Orthanc may hold several studies under one StudyInstanceUID (other PatientIDs: a
-- C-STORE under another MRN, a held STOW-RS) and a fill stores all of their answers. `linked` marks the answers of the
-- Orthanc studies the EHR links under the UID (imaging_studies.orthanc_study_id, or for links without one the
-- PatientIDs of the patient's identifiers: src/dicomweb/linked-studies.ts), decided at fill time from the ImagingStudy
-- row version the fill is tied to; searches return linked answers only. It replaces 013's per-answer Orthanc id, which
-- made every search join the patients (measured: +0.3 ms per search, ~20% of the study-level QIDO rate).
ALTER TABLE qido_study_answers DROP COLUMN orthanc_study_id;
ALTER TABLE qido_study_answers ADD COLUMN linked boolean NOT NULL DEFAULT false;

-- Answers stored before this migration are unmarked: every study is fetched again.
UPDATE qido_study_fills SET epoch = epoch + 1;
