-- QIDO-RS study level answered from the EHR (issue 10, src/dicomweb/qido-study-index.ts): per linked study, Orthanc's
-- own study-level QIDO-RS answer (DICOM JSON, PS3.18 §10.6.3) and its matching attributes, normalized as Orthanc
-- matches them. A study's answers are valid only while
--   * the ImagingStudy row is still at the version read before Orthanc was asked (source_version = version_id: every
--     linking, STOW-RS merge, change-feed ingest, deletion and relink writes a new ImagingStudy version), and
--   * no explicit invalidation happened since (filled_epoch = epoch: changes of Orthanc's content without a new
--     ImagingStudy version, e.g. an undone STOW-RS or a stable study the change feed found up to date), and
--   * it is younger than EHR_DICOMWEB_QIDO_INDEX_MAX_AGE_MS (bounds changes made in Orthanc directly).
-- Everything is decided in the database, so every replica sees the same validity.
CREATE TABLE qido_study_fills (
  study_instance_uid text PRIMARY KEY,
  -- Bumped by every explicit invalidation.
  epoch              bigint NOT NULL DEFAULT 0,
  -- The epoch and ImagingStudy version the last fill was read at (NULL: never filled).
  filled_epoch       bigint,
  source_version     int,
  filled_at          timestamptz
);

-- Orthanc may hold several studies with one StudyInstanceUID (different PatientIDs): one row per answer object.
CREATE TABLE qido_study_answers (
  study_instance_uid text NOT NULL REFERENCES qido_study_fills ON DELETE CASCADE,
  ordinal            int NOT NULL,
  answer             jsonb NOT NULL,
  patient_id         text NOT NULL DEFAULT '',
  patient_name       text NOT NULL DEFAULT '',
  accession_number   text NOT NULL DEFAULT '',
  study_description  text NOT NULL DEFAULT '',
  study_date         text NOT NULL DEFAULT '',
  modalities         text[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (study_instance_uid, ordinal)
);
CREATE INDEX qido_study_answers_patient_id_idx ON qido_study_answers (patient_id);
CREATE INDEX qido_study_answers_accession_number_idx ON qido_study_answers (accession_number);
CREATE INDEX qido_study_answers_study_date_idx ON qido_study_answers (study_date);
