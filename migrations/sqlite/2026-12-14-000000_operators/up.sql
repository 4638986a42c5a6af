-- Operator accounts with roles (issue 18 part 1). Keep in step with migrations/postgres/<same
-- version>/up.sql and src/store/schema.rs. Nothing here lets its reader log in as an operator:
-- - operators.password_hash is an Argon2id PHC string (src/password.rs: m=19456 KiB, t=2, p=1,
--   16-byte random salt); the password itself is shown once, when it is made.
-- - operator_tokens.hash is SHA-256 of a 256-bit random API token (`pgo_…`), as for partner
--   keys; prefix is its first 8 characters, for lists and for finding the candidates.
-- - login_throttle counts failed dashboard logins per account name ('account') and per source
--   address ('address'), shared by every node; locked_until_ms is unix milliseconds.
-- Dashboard sessions now belong to an operator; sessions made before (by the shared admin token)
-- are deleted: everyone logs in again, as an operator.
CREATE TABLE operators (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT    NOT NULL,
    disabled_at   BIGINT  NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE operator_tokens (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    operator_id  BIGINT  NOT NULL REFERENCES operators (id),
    label        TEXT    NULL,
    prefix       TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT  NULL,
    revoked_at   BIGINT  NULL
);
CREATE INDEX operator_tokens_prefix ON operator_tokens (prefix);

CREATE TABLE login_throttle (
    scope           TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    failures        INTEGER NOT NULL,
    locked_until_ms BIGINT  NOT NULL,
    last_failure_ms BIGINT  NOT NULL,
    PRIMARY KEY (scope, key)
);

DELETE FROM dashboard_sessions;
ALTER TABLE dashboard_sessions ADD COLUMN operator_id BIGINT NULL REFERENCES operators (id);
