-- Partner data (SQLite). Keep in step with migrations/postgres/<same version>/up.sql and
-- src/store/schema.rs: same tables, column names and types. Timestamps are unix seconds.
-- Ids are INTEGER PRIMARY KEY, i.e. the 64-bit rowid (BIGINT in PostgreSQL); AUTOINCREMENT so
-- that ids, and the partner ids generated from them, are never reused.

CREATE TABLE "groups" (
    name                      TEXT    NOT NULL PRIMARY KEY,
    rate_per_second           INTEGER NULL CHECK (rate_per_second > 0),
    burst                     INTEGER NULL CHECK (burst > 0),
    aggregate_rate_per_second INTEGER NULL CHECK (aggregate_rate_per_second > 0),
    aggregate_burst           INTEGER NULL CHECK (aggregate_burst > 0),
    created_at                BIGINT  NOT NULL,
    CHECK ((rate_per_second IS NULL) = (burst IS NULL)),
    CHECK ((aggregate_rate_per_second IS NULL) = (aggregate_burst IS NULL))
);

CREATE TABLE partners (
    id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    partner_id       TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    country          TEXT    NULL,
    group_name       TEXT    NULL REFERENCES "groups" (name),
    status           TEXT    NOT NULL CHECK (status IN ('active', 'suspended', 'offboarded')),
    contact          TEXT    NULL,
    billing_rate     TEXT    NULL,
    feature_defaults TEXT    NULL,
    callback_url     TEXT    NULL,
    callback_ca_pem  TEXT    NULL,
    rate_per_second  INTEGER NULL CHECK (rate_per_second > 0),
    burst            INTEGER NULL CHECK (burst > 0),
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    CHECK ((rate_per_second IS NULL) = (burst IS NULL))
);
CREATE INDEX partners_group_name ON partners (group_name);

CREATE TABLE api_keys (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    partner_id   BIGINT  NOT NULL REFERENCES partners (id),
    kind         TEXT    NOT NULL CHECK (kind IN ('partner', 'callback')),
    prefix       TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NULL,
    revoked_at   BIGINT  NULL,
    last_used_at BIGINT  NULL
);
CREATE INDEX api_keys_partner_id ON api_keys (partner_id);

CREATE TABLE allow_entries (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT  NOT NULL REFERENCES partners (id),
    cidr       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (partner_id, cidr)
);

CREATE TABLE grants (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT  NOT NULL REFERENCES partners (id),
    permission TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (partner_id, permission)
);

CREATE TABLE usage_stats (
    bucket_start BIGINT NOT NULL,
    partner_id   TEXT   NOT NULL,
    operation    TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,
    count        BIGINT NOT NULL,
    total_micros BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, partner_id, operation, outcome)
);

CREATE TABLE audit_log (
    id     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at     BIGINT  NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- "revision" is bumped (+1) in the same transaction by every write to partner, key, allowlist,
-- grant, group or throttle data: gateway nodes poll it to notice changes cheaply.
CREATE TABLE meta (
    key   TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);
