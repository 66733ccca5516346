-- Caller cache invalidation (src/auth/caller-cache.ts, src/auth/auth-change-listener.ts): every facade process caches
-- the caller resolved from a bearer token for a few seconds and LISTENs on `ehr_auth_changed`. Every change to what
-- resolving a caller reads announces itself here, in the writer's transaction (delivered at commit), so that no
-- writer (facade, `bin/ehr`, manual SQL) can forget to. Receivers drop their whole cache; the payload is empty.
CREATE FUNCTION ehr_notify_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ehr_auth_changed', '');
  RETURN NULL;
END
$$;

-- Revoked access tokens (RFC 7009), users (active, roles, Practitioner, department, external identity), patient
-- grants, OAuth clients (active, kind, scope ceiling, allowed patients) and signing keys.
CREATE TRIGGER revoked_tokens_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON revoked_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
CREATE TRIGGER users_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
CREATE TRIGGER patient_grants_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON patient_grants
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
CREATE TRIGGER oauth_clients_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oauth_clients
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
CREATE TRIGGER signing_keys_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
-- Refresh token family kills (revoked_at set).
CREATE TRIGGER refresh_tokens_auth_changed AFTER UPDATE OF revoked_at ON refresh_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
-- Imaging assignments of radiologists come from orders (performer, patient): only changes that can move them.
CREATE TRIGGER orders_auth_changed AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF patient_id, content, deleted ON orders
  FOR EACH STATEMENT EXECUTE FUNCTION ehr_notify_auth_changed();
