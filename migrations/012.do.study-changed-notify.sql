-- Cross-replica invalidation of the DICOMweb caches (src/dicomweb/study-change-listener.ts): every facade process
-- caches Orthanc's series answers (series-cache.ts) and study → patient links (study-index.ts) and LISTENs on
-- `ehr_study_changed`. Every change of a study that those caches can see announces itself here, in the writer's
-- transaction (delivered at commit, https://www.postgresql.org/docs/15/sql-notify.html), so that no writer (a facade
-- replica's FHIR API, STOW-RS, change feed, `bin/ehr`, manual SQL) can forget to:
--   * imaging_studies rows (insert, update, delete): links, restrictions, and every content change the EHR records as a
--     new ImagingStudy version (STOW-RS merges, change-feed linking, deletion sweep, relink); old and new UIDs;
--   * qido_study_fills.epoch bumps: content changes without a new ImagingStudy version (an undone STOW-RS, a stable
--     study the change feed found up to date or held, held STOW-RS studies); every facade bumps the epoch on each
--     study-content signal (src/dicomweb/plugin.ts → QidoStudyIndex.invalidate), after the change committed.
-- Payload: the StudyInstanceUID, or '' for "any study" (TRUNCATE, or more studies in one statement than worth naming),
-- followed by ' ' and an origin when the writer's transaction set `ehr.study_change_origin` (a facade process tags its
-- own epoch bumps, which follow its in-process invalidation, so that it can skip their echo).
CREATE FUNCTION ehr_notify_studies_changed(uids text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  uid text;
  origin text := coalesce(current_setting('ehr.study_change_origin', true), '');
  suffix text;
BEGIN
  suffix := CASE WHEN origin <> '' AND octet_length(origin) <= 64 THEN ' ' || origin ELSE '' END;
  IF cardinality(uids) > 64 THEN
    PERFORM pg_notify('ehr_study_changed', suffix);
    RETURN;
  END IF;
  FOREACH uid IN ARRAY coalesce(uids, '{}') LOOP
    -- A DICOM UID has at most 64 characters (PS3.5 §9.1), a NOTIFY payload less than 8000 bytes: a longer value (an
    -- identifier no DICOM study can have, or one with a space) is announced as "any study" rather than failing the
    -- writer.
    PERFORM pg_notify('ehr_study_changed',
      CASE WHEN octet_length(uid) < 7000 AND position(' ' IN uid) = 0 THEN uid ELSE '' END || suffix);
  END LOOP;
END
$$;

CREATE FUNCTION ehr_notify_imaging_studies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM ehr_notify_studies_changed(ARRAY(
      SELECT DISTINCT study_instance_uid FROM new_rows WHERE study_instance_uid IS NOT NULL));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM ehr_notify_studies_changed(ARRAY(
      SELECT study_instance_uid FROM new_rows WHERE study_instance_uid IS NOT NULL
      UNION SELECT study_instance_uid FROM old_rows WHERE study_instance_uid IS NOT NULL));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM ehr_notify_studies_changed(ARRAY(
      SELECT DISTINCT study_instance_uid FROM old_rows WHERE study_instance_uid IS NOT NULL));
  ELSE
    PERFORM pg_notify('ehr_study_changed', '');
  END IF;
  RETURN NULL;
END
$$;

-- Transition tables allow one event per trigger: one statement-level trigger per event.
CREATE TRIGGER imaging_studies_insert_study_changed AFTER INSERT ON imaging_studies
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_imaging_studies_changed();
CREATE TRIGGER imaging_studies_update_study_changed AFTER UPDATE ON imaging_studies
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_imaging_studies_changed();
CREATE TRIGGER imaging_studies_delete_study_changed AFTER DELETE ON imaging_studies
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_imaging_studies_changed();
CREATE TRIGGER imaging_studies_truncate_study_changed AFTER TRUNCATE ON imaging_studies
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_imaging_studies_changed();

-- Epoch bumps only: a fill (INSERT with the default epoch 0, UPDATE of filled_epoch/source/filled_at) is no change.
CREATE FUNCTION ehr_notify_study_epoch_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM ehr_notify_studies_changed(ARRAY(SELECT study_instance_uid FROM new_rows WHERE epoch <> 0));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM ehr_notify_studies_changed(ARRAY(
      SELECT n.study_instance_uid FROM new_rows n LEFT JOIN old_rows o USING (study_instance_uid)
      WHERE o.epoch IS DISTINCT FROM n.epoch));
  ELSE
    PERFORM pg_notify('ehr_study_changed', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER qido_study_fills_insert_study_changed AFTER INSERT ON qido_study_fills
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_study_epoch_changed();
CREATE TRIGGER qido_study_fills_update_study_changed AFTER UPDATE ON qido_study_fills
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_study_epoch_changed();
CREATE TRIGGER qido_study_fills_truncate_study_changed AFTER TRUNCATE ON qido_study_fills
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_study_epoch_changed();
