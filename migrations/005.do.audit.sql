-- Audit (issue 7): IHE BALP AuditEvents, append-only, in one SHA-256 hash chain.
-- hash = sha256(prev_hash || RFC 8785 canonical JSON of content); seq is dense and assigned under the chain head lock,
-- so the chain is linear even with concurrent writers. The index columns are derived from content (verify checks).

CREATE TABLE audit_event (
  seq             bigint PRIMARY KEY CHECK (seq > 0),
  id              uuid NOT NULL UNIQUE,
  recorded        timestamptz NOT NULL,
  patient_ids     text[] NOT NULL DEFAULT '{}',
  agent_who       text[] NOT NULL DEFAULT '{}',
  entity_refs     text[] NOT NULL DEFAULT '{}',
  type_tokens     text[] NOT NULL DEFAULT '{}',
  subtype_tokens  text[] NOT NULL DEFAULT '{}',
  action          text,
  outcome         text NOT NULL,
  source          text NOT NULL,
  request_id      text,
  content         jsonb NOT NULL,
  prev_hash       text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash            text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_event_recorded ON audit_event (recorded DESC, seq DESC);
CREATE INDEX audit_event_patient_ids ON audit_event USING gin (patient_ids);
CREATE INDEX audit_event_agent_who ON audit_event USING gin (agent_who);
CREATE INDEX audit_event_entity_refs ON audit_event USING gin (entity_refs);
CREATE INDEX audit_event_type_tokens ON audit_event USING gin (type_tokens);
CREATE INDEX audit_event_subtype_tokens ON audit_event USING gin (subtype_tokens);
CREATE INDEX audit_event_request_id ON audit_event (request_id);

-- The chain head: one row, locked FOR UPDATE by every append (and by prune) so that links are made one at a time.
CREATE TABLE audit_chain_head (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_seq   bigint NOT NULL,
  last_hash  text NOT NULL
);
INSERT INTO audit_chain_head (singleton, last_seq, last_hash) VALUES (true, 0, repeat('0', 64));

-- Retention checkpoints: each prune records the seq and hash of the last event it removed, so that the remaining chain
-- verifies from there. Checkpoints are chained among themselves the same way (hash over prev_hash + content).
CREATE TABLE audit_checkpoint (
  id          bigserial PRIMARY KEY,
  content     jsonb NOT NULL,
  prev_hash   text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash        text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);

-- Append-only, enforced in the database too: no UPDATE, no TRUNCATE; DELETE of events only by `audit prune`, which
-- sets ehr.audit_prune for its own transaction. (The table owner can still disable triggers; the hash chain is what
-- makes such tampering evident.)
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_event' AND current_setting('ehr.audit_prune', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
