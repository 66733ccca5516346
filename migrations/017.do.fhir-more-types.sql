-- More FHIR R4 types (src/fhir/registry.ts): Organization, Location and PractitionerRole (shared reference data, no
-- patient), DiagnosticReport (the radiology report) and Observation (both in the Patient compartment). Same shape as
-- the tables of 002: the current version as JSONB, the compartment owner and the sort keys; history and search
-- index rows go to the shared tables.
CREATE TABLE organizations (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

CREATE TABLE locations (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

CREATE TABLE practitioner_roles (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

CREATE TABLE diagnostic_reports (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

CREATE TABLE observations (
  id           text PRIMARY KEY,
  version_id   int NOT NULL,
  last_updated timestamptz NOT NULL,
  deleted      boolean NOT NULL DEFAULT false,
  content      jsonb NOT NULL,
  patient_id   text,
  sort_date    timestamptz NOT NULL DEFAULT '-infinity',
  sort_string  text NOT NULL DEFAULT ''
);

CREATE INDEX organizations_last_updated_idx ON organizations (last_updated, id);
CREATE INDEX organizations_sort_string_idx ON organizations (sort_string, id);
CREATE INDEX locations_last_updated_idx ON locations (last_updated, id);
CREATE INDEX locations_sort_string_idx ON locations (sort_string, id);
CREATE INDEX practitioner_roles_last_updated_idx ON practitioner_roles (last_updated, id);
CREATE INDEX diagnostic_reports_last_updated_idx ON diagnostic_reports (last_updated, id);
CREATE INDEX diagnostic_reports_sort_date_idx ON diagnostic_reports (sort_date, id);
CREATE INDEX diagnostic_reports_patient_id_idx ON diagnostic_reports (patient_id, id);
CREATE INDEX observations_last_updated_idx ON observations (last_updated, id);
CREATE INDEX observations_sort_date_idx ON observations (sort_date, id);
CREATE INDEX observations_patient_id_idx ON observations (patient_id, id);
