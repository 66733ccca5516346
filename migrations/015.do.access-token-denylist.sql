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
