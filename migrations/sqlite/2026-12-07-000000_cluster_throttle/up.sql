-- Cluster-wide throttling (issue 15 part 1). Keep in step with migrations/postgres/<same
-- version>/up.sql and src/store/schema.rs.
--
-- throttle_usage: per node, per limiter (scope 'partner' with the partner id, or 'group' with
-- the group's name), how many calls the node has admitted since it started (cumulative, only
-- ever grows for one node_id). Every node writes its changed rows and reads the others' every
-- throttle.cluster_sync_ms (src/throttle/cluster.rs) and charges the differences to its own
-- limiters, so each node's limiter spends what the whole cluster admitted. created_ms (set
-- when the row is inserted) and updated_ms are the database's clock (unix milliseconds): a
-- reader charges the whole count of a row created since its last read (a new node, or a
-- partner's first calls on a node) and takes an older row it does not know as a starting
-- point. Rows of nodes not seen for an hour are deleted with the nodes' own pruning.
CREATE TABLE throttle_usage (
    node_id    TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    key        TEXT   NOT NULL,
    admitted   BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (node_id, scope, key)
);
-- Each read asks for the rows changed since the reader's last read.
CREATE INDEX throttle_usage_updated ON throttle_usage (updated_ms);
-- (On SQLite there is one node: the table stays empty.)
