-- Audit appends in one round trip with a cached plan (issue 10, bench/FINDINGS.md §1): a batch of linked events
-- arrives as one JSON array (one element per row, the columns of audit_event by name) instead of a statement with
-- 15 parameters per event that PostgreSQL parses and plans on every append.

-- Inserts the rows of `batch`; returns how many. The caller holds the chain-head lock or moves the head in the same
-- transaction (audit_append below).
CREATE FUNCTION audit_insert_batch(batch jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  inserted integer;
BEGIN
  INSERT INTO audit_event (seq, id, recorded, patient_ids, agent_who, entity_refs, type_tokens, subtype_tokens,
                           action, outcome, source, request_id, content, prev_hash, hash)
  SELECT r.seq, r.id, r.recorded, r.patient_ids, r.agent_who, r.entity_refs, r.type_tokens, r.subtype_tokens,
         r.action, r.outcome, r.source, r.request_id, r.content, r.prev_hash, r.hash
    FROM jsonb_to_recordset(batch) AS r(seq bigint, id uuid, recorded timestamptz, patient_ids text[],
                                        agent_who text[], entity_refs text[], type_tokens text[],
                                        subtype_tokens text[], action text, outcome text, source text,
                                        request_id text, content jsonb, prev_hash text, hash text);
  GET DIAGNOSTICS inserted = ROW_COUNT;
  RETURN inserted;
END $$;

-- Compare-and-set append: links `batch` only if the chain head is still (expected_seq, expected_hash), moving it to
-- (new_seq, new_hash); returns the rows inserted, 0 when another writer moved the head (nothing is written then).
-- Under READ COMMITTED the UPDATE waits for a concurrent writer's lock and re-checks its condition on the new head.
CREATE FUNCTION audit_append(expected_seq bigint, expected_hash text, new_seq bigint, new_hash text, batch jsonb)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  UPDATE audit_chain_head SET last_seq = new_seq, last_hash = new_hash
   WHERE singleton AND last_seq = expected_seq AND last_hash = expected_hash;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  RETURN audit_insert_batch(batch);
END $$;
