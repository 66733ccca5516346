-- Patients a request named but was not shown (a refused read of Patient/B, a WADO of B's study, a search narrowed to
-- the caller's own compartment): derived from the event's content like the other index columns (chain.ts
-- `auditIndex`), searched by auditors with `patient=` but never part of a patient's own compartment (patient_ids).
-- Events stored before this column have none recorded in their content: '{}' is also what their content derives.
ALTER TABLE audit_event ADD COLUMN requested_patient_ids text[] NOT NULL DEFAULT '{}';
CREATE INDEX audit_event_requested_patient_ids ON audit_event USING gin (requested_patient_ids);

-- As in migration 010, plus the new column (absent from rows queued by an older process: then '{}').
CREATE OR REPLACE FUNCTION audit_insert_batch(batch jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  inserted integer;
BEGIN
  INSERT INTO audit_event (seq, id, recorded, patient_ids, requested_patient_ids, agent_who, entity_refs, type_tokens,
                           subtype_tokens, action, outcome, source, request_id, content, prev_hash, hash)
  SELECT r.seq, r.id, r.recorded, r.patient_ids, coalesce(r.requested_patient_ids, '{}'), r.agent_who, r.entity_refs,
         r.type_tokens, r.subtype_tokens, r.action, r.outcome, r.source, r.request_id, r.content, r.prev_hash, r.hash
    FROM jsonb_to_recordset(batch) AS r(seq bigint, id uuid, recorded timestamptz, patient_ids text[],
                                        requested_patient_ids text[], agent_who text[], entity_refs text[],
                                        type_tokens text[], subtype_tokens text[], action text, outcome text,
                                        source text, request_id text, content jsonb, prev_hash text, hash text);
  GET DIAGNOSTICS inserted = ROW_COUNT;
  RETURN inserted;
END $$;
