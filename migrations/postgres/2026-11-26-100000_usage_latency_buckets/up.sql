-- Per-minute latency histograms beside usage_stats (which keeps its rows and meaning): for each
-- bucket_start × partner_id × operation × outcome, how many calls took at most le_micros and more
-- than the next lower bound. The bounds are `latency::BOUNDS_MICROS` in src/latency.rs
-- (100 µs … 60 s, 1-2-3-5 steps); le_micros = 9223372036854775807 (i64::MAX) is the overflow
-- bucket (slower than the last bound). Only buckets with calls have a row. Rows are added to,
-- never overwritten, so several gateway nodes add up, like usage_stats; both are written in the
-- same transaction. Calls counted before this migration have no rows here (their percentiles
-- are unknown). Keep in step with migrations/{sqlite,postgres}/<same version>/up.sql.
CREATE TABLE usage_latency (
    bucket_start BIGINT NOT NULL,
    partner_id   TEXT   NOT NULL,
    operation    TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,
    le_micros    BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (bucket_start, partner_id, operation, outcome, le_micros)
);
