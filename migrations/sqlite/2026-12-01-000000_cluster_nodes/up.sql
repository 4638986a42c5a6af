-- The cluster (issue 15). Keep in step with migrations/postgres/<same version>/up.sql and
-- src/store/schema.rs.
--
-- nodes: one row per `partnergate serve` process since its start (node_id is random per start),
-- written by the node's heartbeat every second (src/node.rs). last_seen_ms is the database's
-- clock (unix milliseconds); a node silent for more than 5 s is shown as gone, and its row is
-- deleted after 24 h of silence. requests_total and requests_per_second are the node's demand.
-- (SQLite has no notifications: its nodes poll meta.revision; push_connected stays false.)
CREATE TABLE nodes (
    node_id             TEXT    NOT NULL PRIMARY KEY,
    listen              TEXT    NOT NULL,
    version             TEXT    NOT NULL,
    started_at          BIGINT  NOT NULL,
    last_seen_ms        BIGINT  NOT NULL,
    revision            BIGINT  NOT NULL,
    requests_total      BIGINT  NOT NULL,
    requests_per_second DOUBLE  NOT NULL,
    push_connected      BOOLEAN NOT NULL
);
