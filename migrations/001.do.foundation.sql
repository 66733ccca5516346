-- Foundation schema. Later migrations add the FHIR resource tables, authorization and audit.
-- The EHR's users (founding design: "users" table). Roles: doctor, nurse, radiologist, auditor, admin.
CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  username      text NOT NULL UNIQUE,
  display_name  text NOT NULL,
  roles         text[] NOT NULL DEFAULT '{}',
  password_hash text,
  active        boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_roles_known CHECK (roles <@ ARRAY['doctor','nurse','radiologist','auditor','admin']::text[])
);
