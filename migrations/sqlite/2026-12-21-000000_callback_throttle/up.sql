-- Callback throttling (issue 19 part 4). Keep in step with the other backend's <same version>
-- and src/store/schema.rs.
--
-- callback_rates: a partner's own rate for the callbacks the TSP's partner API layer sends to
-- its BSS through the relay (POST /soap/callback/v1). No row: callback.default_rate_per_second
-- and callback.default_burst apply. A table of its own rather than two columns of partners
-- (which has the 16 columns Diesel's default table size allows); deleted with its partner row
-- (partners are never deleted, only offboarded, so in practice never). The cluster-wide counts
-- go into throttle_usage under scope 'callback' (scope is free text: no change there).
CREATE TABLE callback_rates (
    partner_id      BIGINT  NOT NULL PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    rate_per_second INTEGER NOT NULL CHECK (rate_per_second > 0),
    burst           INTEGER NOT NULL CHECK (burst > 0)
);
