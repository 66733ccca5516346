-- Authorization (issue 4): users' credentials and links, patient grants, OAuth clients, signing keys, authorization
-- codes, refresh tokens, revoked access tokens, client-assertion replay cache and login attempt counters.

-- Users: the Practitioner they are (fhirUser), their department (radiology worklists) and an optional external identity
-- (iss + sub of an external IdP) so that tokens from a configured external issuer map onto a local user.
ALTER TABLE users
  ADD COLUMN practitioner_id   text CHECK (practitioner_id ~ '^[A-Za-z0-9.-]{1,64}$'),
  ADD COLUMN department        text,
  ADD COLUMN external_issuer   text,
  ADD COLUMN external_subject  text,
  ADD COLUMN updated_at        timestamptz NOT NULL DEFAULT now(),
  ADD CONSTRAINT users_external_pair CHECK ((external_issuer IS NULL) = (external_subject IS NULL));
CREATE UNIQUE INDEX users_external_identity ON users (external_issuer, external_subject)
  WHERE external_issuer IS NOT NULL;

-- Doctors and nurses see the patients they are granted (the chosen model, rather than CareTeam membership).
-- A grant names the granting user and a reason, and may expire. Revoking keeps the row (who, when) for the audit trail.
CREATE TABLE patient_grants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  patient_id  text NOT NULL CHECK (patient_id ~ '^[A-Za-z0-9.-]{1,64}$'),
  granted_by  uuid NOT NULL REFERENCES users (id),
  reason      text NOT NULL CHECK (length(btrim(reason)) > 0),
  expires_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  revoked_by  uuid REFERENCES users (id)
);
CREATE UNIQUE INDEX patient_grants_live ON patient_grants (user_id, patient_id) WHERE revoked_at IS NULL;

-- OAuth clients. `public` clients use the authorization code flow with PKCE and no secret; `confidential` and `backend`
-- clients authenticate with private_key_jwt against their registered JWKS (inline or by URL).
-- scope_ceiling: the most a client can ever get (space-separated SMART scopes).
-- allowed_patients: for backend clients, NULL means all patients, otherwise only these.
CREATE TABLE oauth_clients (
  client_id        text PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9._~-]{1,128}$'),
  name             text NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('public', 'confidential', 'backend')),
  redirect_uris    text[] NOT NULL DEFAULT '{}',
  jwks             jsonb,
  jwks_uri         text,
  scope_ceiling    text NOT NULL,
  allowed_patients text[],
  active           boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT oauth_clients_keys CHECK (kind = 'public' OR jwks IS NOT NULL OR jwks_uri IS NOT NULL),
  CONSTRAINT oauth_clients_redirects CHECK (kind = 'backend' OR cardinality(redirect_uris) > 0)
);

-- Signing keys of the built-in authorization server. The newest non-retired key signs; retired keys stay in the JWKS
-- until every token they signed has expired, then they are dropped from it.
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL CHECK (alg IN ('RS256', 'ES256', 'PS256')),
  private_jwk  jsonb NOT NULL,
  public_jwk   jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  retired_at   timestamptz
);

-- Authorization codes (RFC 6749 §4.1), stored by SHA-256 hash, single use, short-lived, bound to the PKCE challenge.
CREATE TABLE authorization_codes (
  code_hash       text PRIMARY KEY,
  client_id       text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  redirect_uri    text NOT NULL,
  scope           text NOT NULL,
  patient_id      text,
  nonce           text,
  code_challenge  text NOT NULL,
  family_id       uuid NOT NULL DEFAULT gen_random_uuid(),
  expires_at      timestamptz NOT NULL,
  used_at         timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens, stored by hash and rotated on every use. All tokens of one grant share a family: presenting a used
-- refresh token again revokes the whole family (OAuth 2.0 Security BCP, refresh token rotation).
CREATE TABLE refresh_tokens (
  token_hash  text PRIMARY KEY,
  family_id   uuid NOT NULL,
  client_id   text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  scope       text NOT NULL,
  patient_id  text,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Revoked access tokens (by jti) until they would have expired anyway (RFC 7009).
CREATE TABLE revoked_tokens (
  jti         text PRIMARY KEY,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz NOT NULL DEFAULT now()
);

-- Client assertion jti replay cache (RFC 7523 §3, SMART Backend Services): one use per client and jti until exp.
CREATE TABLE client_assertion_jtis (
  client_id   text NOT NULL,
  jti         text NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);

-- Failed login counters per user name and per client IP, in a fixed window.
CREATE TABLE login_attempts (
  key           text PRIMARY KEY,
  failures      integer NOT NULL DEFAULT 0,
  window_start  timestamptz NOT NULL DEFAULT now()
);
