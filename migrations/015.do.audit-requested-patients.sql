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

-- Events stored before this migration recorded no requested patients. For them, an auditor's `patient=` search also
-- looks into their queries (the raw query of the BALP query entity, base64): only up to this seq, so that the scan
-- does not grow with new events.
CREATE TABLE audit_requested_from (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  legacy_through_seq bigint NOT NULL
);
INSERT INTO audit_requested_from (singleton, legacy_through_seq)
  SELECT true, coalesce(max(seq), 0) FROM audit_event;

-- The raw queries of an event's entities, decoded (bytes outside ASCII as \ooo escapes: never an encoding error).
CREATE FUNCTION audit_query_text(content jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(encode(decode(e->>'query', 'base64'), 'escape'), E'\n'), '')
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(content->'entity') = 'array' THEN content->'entity' ELSE '[]' END) e
   WHERE jsonb_typeof(e->'query') = 'string'
$$;
