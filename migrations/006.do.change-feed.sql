-- C-STORE ingest (issue 9): the cursor of the consumer of Orthanc's /changes, what the feed indexed, and the
-- reconciliation queue of studies that matched no patient/order (from the feed and from STOW's `hold` mode).
-- Patients, orders and ImagingStudies are referenced by their FHIR ids as text (no foreign keys into the FHIR tables,
-- whose rows are versioned by the FHIR layer).

-- One row per consumer. Advanced in the same transaction as the EHR changes a feed entry causes, and only by the
-- holder of the previous value (compare-and-set under FOR UPDATE), so a change is applied once even if two replicas
-- briefly both believe they lead.
CREATE TABLE change_feed_cursor (
  consumer    text PRIMARY KEY,
  last_seq    bigint NOT NULL CHECK (last_seq >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every Orthanc study the feed has handled, with the instance count it saw: a StableStudy seen again with no new
-- instances is a no-op (idempotency), and a study indexed twice is visible (times_indexed).
CREATE TABLE change_feed_studies (
  orthanc_study_id    text PRIMARY KEY,
  study_instance_uid  text NOT NULL,
  instances           integer NOT NULL CHECK (instances >= 0),
  outcome             text NOT NULL CHECK (outcome IN ('linked', 'unmatched')),
  imaging_study_id    text,
  last_seq            bigint NOT NULL,
  times_indexed       integer NOT NULL DEFAULT 1,
  first_indexed_at    timestamptz NOT NULL DEFAULT now(),
  last_indexed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_feed_studies_uid ON change_feed_studies (study_instance_uid);

-- The reconciliation queue (exposed as /api/v1/dicom/unmatched and `bin/ehr unmatched`).
CREATE TABLE dicom_unmatched (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  study_instance_uid   text NOT NULL CHECK (study_instance_uid ~ '^[0-9.]{1,64}$'),
  orthanc_study_id     text NOT NULL,
  dicom_patient_id     text,
  accession_number     text,
  patient_name         text,
  study_date           text,
  study_description    text,
  modalities           text[] NOT NULL DEFAULT '{}',
  number_of_instances  integer,
  reason               text NOT NULL CHECK (reason IN ('unknown-mrn', 'unknown-accession', 'patient-order-mismatch',
                                                       'order-not-actionable', 'order-linked-elsewhere',
                                                       'missing-identifiers')),
  detail               text,
  source               text NOT NULL CHECK (source IN ('stow', 'dimse')),
  status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'relinking', 'linked', 'rejected', 'deleted')),
  -- Re-link progress (Orthanc ids change when PatientID changes): which copy is being written.
  relink_phase         text CHECK (relink_phase IN ('to-temporary', 'to-final')),
  target_patient_id    text,
  target_order_id      text,
  target_mrn           text,
  target_accession     text,
  linked_orthanc_study_id text,
  linked_imaging_study_id text,
  reject_reason        text,
  resolved_by          text,
  resolved_at          timestamptz,
  last_error           text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dicom_unmatched_rejected CHECK (status <> 'rejected' OR reject_reason IS NOT NULL),
  CONSTRAINT dicom_unmatched_linked CHECK (status <> 'linked' OR linked_orthanc_study_id IS NOT NULL)
);
-- At most one open item per Orthanc study: enqueueing the same study again updates it instead.
CREATE UNIQUE INDEX dicom_unmatched_open ON dicom_unmatched (orthanc_study_id)
  WHERE status IN ('pending', 'relinking', 'rejected');
CREATE INDEX dicom_unmatched_status ON dicom_unmatched (status, created_at);
CREATE INDEX dicom_unmatched_uid ON dicom_unmatched (study_instance_uid);
