-- Partner enrollment from the partner's own BSS (issue 19). Keep in step with
-- migrations/postgres/<same version>/up.sql and src/store/schema.rs.
-- - pickup_hash is SHA-256 of the 256-bit pickup secret (`pge_…`) shown once to the applicant;
--   the secret itself is never stored.
-- - No key is ever stored here: the partner's keys are made when the approved enrollment is
--   collected, and only their hashes go to api_keys (in the transaction that marks it collected).
-- - request is the applicant's request as JSON (company, country, contacts, operations,
--   networks, callback URL, client certificate, accepted terms), checked when it was filed.
-- - meta 'enrollments' is the row every filing locks first (UPDATE), so that the check of
--   enrollment.max_pending and the insert are one step on every node; it is not the revision
--   (filing is not partner data and reloads no snapshot).
CREATE TABLE enrollments (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    enrollment_id TEXT    NOT NULL UNIQUE,
    pickup_hash   BLOB    NOT NULL CHECK (length(pickup_hash) = 32),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'collected')),
    request       TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    decided_at    BIGINT  NULL,
    decided_by    TEXT    NULL,
    reason        TEXT    NULL,
    partner_id    TEXT    NULL,
    collected_at  BIGINT  NULL
);
CREATE INDEX enrollments_status ON enrollments (status);
INSERT INTO meta (key, value) VALUES ('enrollments', 0);
