-- The reference partner API layer (src/provision/): accounts, services, devices and features
-- of every partner. Keep in step with migrations/sqlite/<same version>/up.sql and
-- src/provision/db.rs. Each entity keeps its key columns (lookups, uniqueness, isolation by
-- partner_id, status) and its whole record as the canonical XML the contract's encoder writes,
-- so a stored record is always a valid contract value. Timestamps are unix seconds.

CREATE TABLE prov_accounts (
    id                 BIGSERIAL PRIMARY KEY,
    account_number     TEXT    NOT NULL UNIQUE,
    partner_id         TEXT    NOT NULL,
    customer_reference TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    record             TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX prov_accounts_partner_ref ON prov_accounts (partner_id, customer_reference);

CREATE TABLE prov_services (
    id             BIGSERIAL PRIMARY KEY,
    service_id     TEXT    NOT NULL UNIQUE,
    partner_id     TEXT    NOT NULL,
    account_number TEXT    NOT NULL REFERENCES prov_accounts (account_number),
    service_type   TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    record         TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX prov_services_account ON prov_services (account_number);

-- MAC addresses are unique across the whole network, whichever partner registered them.
CREATE TABLE prov_devices (
    id          BIGSERIAL PRIMARY KEY,
    mac_address TEXT    NOT NULL UNIQUE,
    partner_id  TEXT    NOT NULL,
    service_id  TEXT    NOT NULL REFERENCES prov_services (service_id),
    status      TEXT    NOT NULL,
    record      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX prov_devices_service ON prov_devices (service_id);

-- settings: the explicitly set values only (ftr:FeatureSettings); unset ones take the
-- partner's defaults when read, so a changed default applies to them.
CREATE TABLE prov_features (
    id         BIGSERIAL PRIMARY KEY,
    service_id TEXT    NOT NULL REFERENCES prov_services (service_id),
    partner_id TEXT    NOT NULL,
    feature    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    settings   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    UNIQUE (service_id, feature)
);

-- A change repeated with the same partner request id returns the first result.
CREATE TABLE prov_idempotency (
    partner_id TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    operation  TEXT   NOT NULL,
    response   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (partner_id, request_id)
);

-- Writers of the partner API layer take this row first (one writer at a time on SQLite
-- without stale-snapshot "database is locked" errors; ordered writers on PostgreSQL).
INSERT INTO meta (key, value) VALUES ('provisioning', 0);
