-- Partner client certificates (issue 18, mutual TLS). Keep in step with
-- migrations/postgres/<same version>/up.sql and src/store/schema.rs.
--
-- client_certs: a partner's registered leaf certificates (several at once for rotation), matched
-- by the SHA-256 of the DER (lower-case hex). A certificate identifies one partner: the
-- fingerprint is unique across partners. subject, not_before and not_after are read from the
-- certificate when it is registered (what `partner show` lists; the request path refuses it
-- outside its dates). cert_der is the certificate itself.
CREATE TABLE client_certs (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT  NOT NULL REFERENCES partners (id),
    sha256     TEXT    NOT NULL UNIQUE CHECK (length(sha256) = 64),
    subject    TEXT    NOT NULL,
    not_before BIGINT  NOT NULL,
    not_after  BIGINT  NOT NULL,
    cert_der   BLOB    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX client_certs_partner_id ON client_certs (partner_id);

-- client_cas: or a partner CA (PEM) and the subject its certificates must have (at most one
-- per partner; both may be set beside registered certificates: either admits a call).
CREATE TABLE client_cas (
    partner_id BIGINT NOT NULL PRIMARY KEY REFERENCES partners (id),
    ca_pem     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
