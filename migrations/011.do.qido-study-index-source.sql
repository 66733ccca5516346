-- QIDO study index (008): a fill is tied to the ImagingStudy row it was read from (id and version), not to the
-- version number alone: version numbers count per ImagingStudy, and a StudyInstanceUID can move to another row
-- (FHIR update of the identifier, delete and re-create), whose version may happen to be equal.
ALTER TABLE qido_study_fills ADD COLUMN source_id text;

-- Fills stored before this migration have no source row: every study is fetched again.
UPDATE qido_study_fills SET epoch = epoch + 1;
