-- Secrets shared by every API process, e.g. the key that signs pagination cursors.
-- Generated on first use; keeping it in the database means every worker and replica
-- agrees without configuration, and a restart does not invalidate cursors.
CREATE TABLE app_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL CHECK (octet_length(value) >= 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
