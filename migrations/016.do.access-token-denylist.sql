-- Access tokens the built-in authorization server issued from a grant (authorization code or refresh token), by jti,
-- so that ending a grant also ends its access tokens (RFC 6749 §4.1.2: a replayed code SHOULD revoke the tokens issued
-- from it; refresh-token reuse, RFC 7009 revocation of a refresh token, deactivating a user). Ending them means adding
-- their jti to `revoked_tokens`, the denylist every facade process checks and whose trigger (migration 007) NOTIFYs
-- `ehr_auth_changed`, so another process stops accepting them at once. No trigger here: issuing a token changes
-- nothing a caller's resolution reads. Rows of both tables are purged once the token has expired.
CREATE TABLE issued_access_tokens (
  jti         text PRIMARY KEY,
  family_id   uuid,
  user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
  client_id   text NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX issued_access_tokens_family ON issued_access_tokens (family_id) WHERE family_id IS NOT NULL;
CREATE INDEX issued_access_tokens_user ON issued_access_tokens (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX issued_access_tokens_expires ON issued_access_tokens (expires_at);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Deactivating a user ends every token naming them, whoever issued it (also development tokens, viewer links and an
-- external IdP's tokens mapped onto the user) and whoever deactivates (`bin/ehr user deactivate`, SQL): the resource
-- server refuses a user's token issued (`iat`) at or before `tokens_not_before`, and the user's refresh tokens are
-- revoked, so reactivating the user revives none of them. The users trigger of migration 007 NOTIFYs the change.
ALTER TABLE users ADD COLUMN tokens_not_before timestamptz;

CREATE FUNCTION ehr_user_deactivating() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.active AND NOT NEW.active THEN
    NEW.tokens_not_before := now();
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER users_deactivating BEFORE UPDATE OF active ON users
  FOR EACH ROW EXECUTE FUNCTION ehr_user_deactivating();

CREATE FUNCTION ehr_user_deactivated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = NEW.id AND revoked_at IS NULL;
  RETURN NULL;
END
$$;
CREATE TRIGGER users_deactivated AFTER UPDATE OF active ON users
  FOR EACH ROW WHEN (OLD.active AND NOT NEW.active) EXECUTE FUNCTION ehr_user_deactivated();
