-- Dashboard sessions, shared by every gateway node on this database (src/admin/dashboard/session.rs).
-- Nothing here lets anyone act as an operator or read a key:
-- - id_hash is SHA-256 of the random session id; the id itself lives only in the browser's cookie.
-- - The CSRF token is not stored: it is HMAC-SHA256 keyed by the session id.
-- - flash and reveal (the one-time message and the new keys shown once) are ChaCha20-Poly1305
--   ciphertext (12-byte nonce first) under a key derived from the session id (HKDF-SHA256); a
--   slot is set to NULL when its page has shown it.
-- created_at and expires_at are unix milliseconds (admin.session_lifetime_ms); a row past
-- expires_at is deleted when read and at the next login.
-- Keep in step with migrations/{sqlite,postgres}/<same version>/up.sql.
CREATE TABLE dashboard_sessions (
    id_hash    BLOB   NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    flash      BLOB   NULL,
    reveal     BLOB   NULL
);
