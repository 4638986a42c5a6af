//! Hand-written Diesel schema for both backends: portable SQL types only (BigInt, Integer,
//! Text, Binary), matching `migrations/{sqlite,postgres}/`.

diesel::table! {
    /// Partner groups: a per-member default rate and a shared (aggregate) cap.
    groups (name) {
        name -> Text,
        rate_per_second -> Nullable<Integer>,
        burst -> Nullable<Integer>,
        aggregate_rate_per_second -> Nullable<Integer>,
        aggregate_burst -> Nullable<Integer>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// One row per partner (never deleted: `status = 'offboarded'`).
    partners (id) {
        id -> BigInt,
        partner_id -> Text,
        name -> Text,
        country -> Nullable<Text>,
        group_name -> Nullable<Text>,
        status -> Text,
        contact -> Nullable<Text>,
        billing_rate -> Nullable<Text>,
        feature_defaults -> Nullable<Text>,
        callback_url -> Nullable<Text>,
        callback_ca_pem -> Nullable<Text>,
        rate_per_second -> Nullable<Integer>,
        burst -> Nullable<Integer>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Key hashes and display prefixes; never the keys.
    api_keys (id) {
        id -> BigInt,
        partner_id -> BigInt,
        kind -> Text,
        prefix -> Text,
        hash -> Binary,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Source networks a partner may call from (canonical `ipnet::IpNet` text).
    allow_entries (id) {
        id -> BigInt,
        partner_id -> BigInt,
        cidr -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// A partner's registered client certificates (mutual TLS), by SHA-256 of the DER.
    client_certs (id) {
        id -> BigInt,
        partner_id -> BigInt,
        sha256 -> Text,
        subject -> Text,
        not_before -> BigInt,
        not_after -> BigInt,
        cert_der -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// A partner's client CA (mutual TLS): certificates chaining to it with this subject.
    client_cas (partner_id) {
        partner_id -> BigInt,
        ca_pem -> Text,
        subject -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Permissions: `*`, `<domain>.*` or an exact operation permission.
    grants (id) {
        id -> BigInt,
        partner_id -> BigInt,
        permission -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Per-minute call counts and summed latency per partner × operation × outcome (`stats.rs`).
    usage_stats (bucket_start, partner_id, operation, outcome) {
        bucket_start -> BigInt,
        partner_id -> Text,
        operation -> Text,
        outcome -> Text,
        count -> BigInt,
        total_micros -> BigInt,
    }
}

diesel::table! {
    /// Per-minute latency histograms beside `usage_stats`: calls per bucket of
    /// `latency::BOUNDS_MICROS` (`le_micros` the bucket's upper bound, `i64::MAX` for overflow).
    usage_latency (bucket_start, partner_id, operation, outcome, le_micros) {
        bucket_start -> BigInt,
        partner_id -> Text,
        operation -> Text,
        outcome -> Text,
        le_micros -> BigInt,
        count -> BigInt,
    }
}

diesel::table! {
    /// Who changed what (written by a later issue).
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    /// Key/value counters; `revision` is bumped by every write to partner data.
    meta (key) {
        key -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    /// Operators' dashboard sessions, shared by every node: the SHA-256 of the session id, the
    /// times (unix milliseconds) and the one-time slots, encrypted under a key only the session
    /// id gives (`admin::dashboard::session`).
    dashboard_sessions (id_hash) {
        id_hash -> Binary,
        created_at -> BigInt,
        expires_at -> BigInt,
        flash -> Nullable<Binary>,
        reveal -> Nullable<Binary>,
        operator_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Operator accounts (`store::operators`): name, role, the Argon2id PHC string of the
    /// password (never the password), disabled or not. Not partner data.
    operators (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        password_hash -> Text,
        disabled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Operators' API tokens: SHA-256 hashes and display prefixes, never the tokens.
    operator_tokens (id) {
        id -> BigInt,
        operator_id -> BigInt,
        label -> Nullable<Text>,
        prefix -> Text,
        hash -> Binary,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Failed dashboard logins per account name and per source address (`store::login_throttle`).
    login_throttle (scope, key) {
        scope -> Text,
        key -> Text,
        failures -> Integer,
        locked_until_ms -> BigInt,
        last_failure_ms -> BigInt,
    }
}

diesel::table! {
    /// Gateway nodes and their heartbeats (`store::nodes`); not partner data.
    nodes (node_id) {
        node_id -> Text,
        listen -> Text,
        version -> Text,
        started_at -> BigInt,
        last_seen_ms -> BigInt,
        revision -> BigInt,
        requests_total -> BigInt,
        requests_per_second -> Double,
        push_connected -> Bool,
    }
}

diesel::table! {
    /// Calls each node has admitted per limiter (`store::throttle_usage`): how the nodes
    /// share one limit; not partner data.
    throttle_usage (node_id, scope, key) {
        node_id -> Text,
        scope -> Text,
        key -> Text,
        admitted -> BigInt,
        created_ms -> BigInt,
        updated_ms -> BigInt,
    }
}

diesel::table! {
    /// A partner's own rate for callbacks to its BSS (no row: `callback.default_*` applies).
    callback_rates (partner_id) {
        partner_id -> BigInt,
        rate_per_second -> Integer,
        burst -> Integer,
    }
}

diesel::table! {
    /// Enrollment requests filed by prospective partners (issue 19): the pickup secret's
    /// SHA-256, never the secret; never a key.
    enrollments (id) {
        id -> BigInt,
        enrollment_id -> Text,
        pickup_hash -> Binary,
        status -> Text,
        request -> Text,
        source -> Text,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
        decided_by -> Nullable<Text>,
        reason -> Nullable<Text>,
        partner_id -> Nullable<Text>,
        collected_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(api_keys -> partners (partner_id));
diesel::joinable!(callback_rates -> partners (partner_id));
diesel::joinable!(allow_entries -> partners (partner_id));
diesel::joinable!(grants -> partners (partner_id));
diesel::joinable!(operator_tokens -> operators (operator_id));
diesel::joinable!(dashboard_sessions -> operators (operator_id));
diesel::joinable!(client_certs -> partners (partner_id));
diesel::joinable!(client_cas -> partners (partner_id));

diesel::allow_tables_to_appear_in_same_query!(
    groups,
    partners,
    api_keys,
    allow_entries,
    grants,
    client_certs,
    client_cas,
    callback_rates,
    usage_stats,
    usage_latency,
    audit_log,
    meta,
    dashboard_sessions,
    nodes,
    throttle_usage,
    operators,
    operator_tokens,
    login_throttle,
    enrollments,
);
