-- FHIR R4 resources (issue 3). One table per resource type: the current version as JSONB plus real columns for the
-- compartment owner, sort keys and the founding design's bridge keys. Every version (including deletions) is kept
-- in fhir_history. Search parameters are indexed in four shared tables (token, string, date, reference), written
-- in the same transaction as the resource. See src/fhir/registry.ts for which parameters are indexed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SEQUENCE mrn_seq;
CREATE SEQUENCE accession_seq;

CREATE TABLE patients (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT '',
  mrn          text CONSTRAINT patients_mrn_key UNIQUE
);

CREATE TABLE practitioners (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

-- The founding design's visits.
CREATE TABLE encounters (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

-- The founding design's orders (ServiceRequest) with the DICOM bridge keys.
CREATE TABLE orders (
  id                 text PRIMARY KEY,
  version_id         int NOT NULL,
  last_updated       timestamptz NOT NULL,
  deleted            boolean NOT NULL DEFAULT false,
  content            jsonb NOT NULL,
  patient_id         text,
  sort_date          timestamptz NOT NULL DEFAULT '-infinity',
  sort_string        text NOT NULL DEFAULT '',
  accession_number   text CONSTRAINT orders_accession_number_key UNIQUE,
  study_instance_uid text CONSTRAINT orders_study_instance_uid_key UNIQUE,
  orthanc_study_id   text CONSTRAINT orders_orthanc_study_id_key UNIQUE,
  number_of_images   int CHECK (number_of_images >= 0),
  uploaded_at        timestamptz
);
CREATE INDEX orders_number_of_images_idx ON orders (number_of_images);
CREATE INDEX orders_uploaded_at_idx ON orders (uploaded_at);

CREATE TABLE imaging_studies (
  id                 text PRIMARY KEY,
  version_id         int NOT NULL,
  last_updated       timestamptz NOT NULL,
  deleted            boolean NOT NULL DEFAULT false,
  content            jsonb NOT NULL,
  patient_id         text,
  sort_date          timestamptz NOT NULL DEFAULT '-infinity',
  sort_string        text NOT NULL DEFAULT '',
  study_instance_uid text CONSTRAINT imaging_studies_study_instance_uid_key UNIQUE,
  orthanc_study_id   text CONSTRAINT imaging_studies_orthanc_study_id_key UNIQUE
);

CREATE TABLE endpoints (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

-- Keyset paging indexes: (sort key, id) per table, and the compartment owner for the access constraint.
CREATE INDEX patients_last_updated_idx ON patients (last_updated, id);
CREATE INDEX patients_sort_date_idx ON patients (sort_date, id);
CREATE INDEX patients_sort_string_idx ON patients (sort_string, id);
CREATE INDEX patients_patient_id_idx ON patients (patient_id, id);
CREATE INDEX practitioners_last_updated_idx ON practitioners (last_updated, id);
CREATE INDEX practitioners_sort_string_idx ON practitioners (sort_string, id);
CREATE INDEX encounters_last_updated_idx ON encounters (last_updated, id);
CREATE INDEX encounters_sort_date_idx ON encounters (sort_date, id);
CREATE INDEX encounters_patient_id_idx ON encounters (patient_id, id);
CREATE INDEX orders_last_updated_idx ON orders (last_updated, id);
CREATE INDEX orders_sort_date_idx ON orders (sort_date, id);
CREATE INDEX orders_patient_id_idx ON orders (patient_id, id);
CREATE INDEX imaging_studies_last_updated_idx ON imaging_studies (last_updated, id);
CREATE INDEX imaging_studies_sort_date_idx ON imaging_studies (sort_date, id);
CREATE INDEX imaging_studies_patient_id_idx ON imaging_studies (patient_id, id);
CREATE INDEX endpoints_last_updated_idx ON endpoints (last_updated, id);

-- Every version of every resource; deletions are versions with deleted = true and no content change.
CREATE TABLE fhir_history (
  resource_type text NOT NULL,
  id            text NOT NULL,
  version_id    int NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean NOT NULL,
  method        text NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH', 'DELETE')),
  content       jsonb NOT NULL,
  patient_id    text,
  PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX fhir_history_type_time_idx ON fhir_history (resource_type, last_updated DESC, id, version_id);
CREATE INDEX fhir_history_patient_idx ON fhir_history (resource_type, patient_id, last_updated DESC);

-- Search indexes. resource_id joins to the resource table of resource_type.
CREATE TABLE search_token (
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  system        text,
  value         text NOT NULL
);
CREATE INDEX search_token_value_idx ON search_token (resource_type, code, value, system);
CREATE INDEX search_token_resource_idx ON search_token (resource_id, resource_type);

CREATE TABLE search_string (
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  value         text NOT NULL, -- normalised: lower case, accents removed
  exact         text NOT NULL
);
CREATE INDEX search_string_prefix_idx ON search_string (resource_type, code, value text_pattern_ops);
CREATE INDEX search_string_trgm_idx ON search_string USING gin (value gin_trgm_ops);
CREATE INDEX search_string_resource_idx ON search_string (resource_id, resource_type);

CREATE TABLE search_date (
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  low           timestamptz NOT NULL,
  high          timestamptz NOT NULL
);
CREATE INDEX search_date_low_idx ON search_date (resource_type, code, low);
CREATE INDEX search_date_high_idx ON search_date (resource_type, code, high);
CREATE INDEX search_date_resource_idx ON search_date (resource_id, resource_type);

CREATE TABLE search_reference (
  resource_type text NOT NULL,
  resource_id   text NOT NULL,
  code          text NOT NULL,
  target_type   text NOT NULL,
  target_id     text NOT NULL
);
CREATE INDEX search_reference_target_idx ON search_reference (resource_type, code, target_id, target_type);
CREATE INDEX search_reference_resource_idx ON search_reference (resource_id, resource_type);
CREATE INDEX search_reference_reverse_idx ON search_reference (target_type, target_id);
