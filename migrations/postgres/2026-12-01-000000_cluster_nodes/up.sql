-- The cluster (issue 15). Keep in step with migrations/sqlite/<same version>/up.sql and
-- src/store/schema.rs.
--
-- nodes: one row per `partnergate serve` process since its start (node_id is random per start),
-- written by the node's heartbeat every second (src/node.rs). last_seen_ms is the database's
-- clock (unix milliseconds), so nodes with skewed clocks still compare; a node silent for more
-- than 5 s is shown as gone, and its row is deleted after 24 h of silence. requests_total and
-- requests_per_second (over the last heartbeat interval) are the node's demand: the figure a
-- share of cluster-wide limits can be computed from (per-partner demand would go in a table
-- keyed by node_id beside this one).
CREATE TABLE nodes (
    node_id             TEXT             NOT NULL PRIMARY KEY,
    listen              TEXT             NOT NULL,
    version             TEXT             NOT NULL,
    started_at          BIGINT           NOT NULL,
    last_seen_ms        BIGINT           NOT NULL,
    revision            BIGINT           NOT NULL,
    requests_total      BIGINT           NOT NULL,
    requests_per_second DOUBLE PRECISION NOT NULL,
    push_connected      BOOLEAN          NOT NULL
);

-- Changes pushed: every bump of meta.revision (every write to partner data bumps it in its
-- transaction, src/store/mod.rs `Store::write`) notifies channel partnergate_revision with the
-- new revision. PostgreSQL delivers a notification when (and only if) the transaction commits;
-- each node LISTENs on one connection of its own and reloads its snapshot at once. A trigger
-- rather than a call in the code: any writer that bumps the revision notifies, whatever binary
-- or tool it is.
CREATE FUNCTION partnergate_notify_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('partnergate_revision', NEW.value::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER meta_revision_notify
    AFTER UPDATE ON meta
    FOR EACH ROW
    WHEN (NEW.key = 'revision')
    EXECUTE PROCEDURE partnergate_notify_revision();
