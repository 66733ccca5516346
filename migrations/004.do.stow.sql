-- STOW-RS ingest (issue 5): one row per study per upload request (plus one for parts that named no study), as the
-- founding design's upload workflow step 7 describes. Who uploaded, for which patient, order and study, how many
-- files and bytes, with what result, and when. Patients and orders are FHIR ids as text (no foreign keys into the
-- versioned FHIR tables). Append-only.
CREATE TABLE dicom_upload_logs (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  request_id          text NOT NULL,
  source              text NOT NULL CHECK (source IN ('stow', 'upload', 'dimse')),
  uploaded_by         text NOT NULL,
  client_id           text,
  patient_id          text,
  order_id            text,
  study_instance_uid  text CHECK (study_instance_uid ~ '^[0-9.]{1,64}$'),
  orthanc_study_id    text,
  number_of_files     integer NOT NULL CHECK (number_of_files >= 0),
  number_stored       integer NOT NULL CHECK (number_stored >= 0),
  number_new          integer NOT NULL CHECK (number_new >= 0),
  number_failed       integer NOT NULL CHECK (number_failed >= 0),
  total_size_bytes    bigint NOT NULL CHECK (total_size_bytes >= 0),
  upload_status       text NOT NULL CHECK (upload_status IN ('success', 'partial', 'failed')),
  -- [{sopInstanceUid, file, reason, comment}] of the failed parts.
  failures            jsonb NOT NULL DEFAULT '[]',
  started_at          timestamptz NOT NULL,
  finished_at         timestamptz NOT NULL,
  CONSTRAINT dicom_upload_logs_counts CHECK (number_stored + number_failed = number_of_files AND number_new <= number_stored),
  CONSTRAINT dicom_upload_logs_times CHECK (finished_at >= started_at)
);
CREATE INDEX dicom_upload_logs_study ON dicom_upload_logs (study_instance_uid);
CREATE INDEX dicom_upload_logs_order ON dicom_upload_logs (order_id);
CREATE INDEX dicom_upload_logs_patient ON dicom_upload_logs (patient_id, finished_at DESC);
CREATE INDEX dicom_upload_logs_finished ON dicom_upload_logs (finished_at DESC);
CREATE INDEX dicom_upload_logs_request ON dicom_upload_logs (request_id);
