-- Patient logins: a user with the `patient` role stands for one Patient (users.patient_id) and has no other role, so
-- that a patient login never carries staff rights and a staff login never stands for a patient. The built-in
-- authorization server gives such a user's tokens that patient as their launch context (src/auth/patient-user.ts).
ALTER TABLE users DROP CONSTRAINT users_roles_known;
ALTER TABLE users ADD CONSTRAINT users_roles_known
  CHECK (roles <@ ARRAY['doctor','nurse','radiologist','auditor','admin','patient']::text[]);
ALTER TABLE users ADD COLUMN patient_id text;
ALTER TABLE users ADD CONSTRAINT users_patient_login CHECK (
  CASE WHEN 'patient' = ANY(roles) THEN roles = ARRAY['patient']::text[] AND patient_id IS NOT NULL
       ELSE patient_id IS NULL END);
CREATE UNIQUE INDEX users_patient_id_idx ON users (patient_id) WHERE patient_id IS NOT NULL;
