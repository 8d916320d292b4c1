-- Shared bearer tokens (R-50). Owned by the cluster superuser (written only by
-- kesuctl); every service role may read it. Tokens are stored as SHA-256 hex.
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.tokens (
  token_hash text PRIMARY KEY,
  name       text NOT NULL,
  role       text NOT NULL,
  scope      text NOT NULL DEFAULT '000000',
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE OR REPLACE FUNCTION auth.tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('auth_tokens', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS tokens_notify ON auth.tokens;
CREATE TRIGGER tokens_notify AFTER INSERT OR UPDATE OR DELETE ON auth.tokens
  FOR EACH STATEMENT EXECUTE FUNCTION auth.tokens_notify();
