//! The partner API layer's tables (hand-written, portable types; migrations in
//! `migrations/*/2026-11-26-070000_provisioning`).

diesel::table! {
    /// Accounts: key columns plus the canonical `acc:Account` record.
    prov_accounts (id) {
        /// Row id.
        id -> BigInt,
        /// `ACC-` and ten digits, unique across the network.
        account_number -> Text,
        /// The owning partner.
        partner_id -> Text,
        /// The partner's CRM reference (searchable).
        customer_reference -> Text,
        /// `PENDING` … `TERMINATED`.
        status -> Text,
        /// Canonical XML of the record.
        record -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Service instances.
    prov_services (id) {
        /// Row id.
        id -> BigInt,
        /// `SVC-` and ten digits.
        service_id -> Text,
        /// The owning partner.
        partner_id -> Text,
        /// The account it belongs to.
        account_number -> Text,
        /// `VOIP`, `SMS`, …
        service_type -> Text,
        /// Status.
        status -> Text,
        /// Canonical XML of the `svc:Service` record.
        record -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Devices, unique by MAC address across the network.
    prov_devices (id) {
        /// Row id.
        id -> BigInt,
        /// Canonical MAC address.
        mac_address -> Text,
        /// The owning partner.
        partner_id -> Text,
        /// The service it serves.
        service_id -> Text,
        /// Status.
        status -> Text,
        /// Canonical XML of the `dev:Device` record.
        record -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Features enabled on services.
    prov_features (id) {
        /// Row id.
        id -> BigInt,
        /// The service.
        service_id -> Text,
        /// The owning partner.
        partner_id -> Text,
        /// `VOICEMAIL`, …
        feature -> Text,
        /// Status.
        status -> Text,
        /// Canonical XML of the explicitly set `ftr:FeatureSettings`.
        settings -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// First results of changes, by partner request id.
    prov_idempotency (partner_id, request_id) {
        /// The partner.
        partner_id -> Text,
        /// The partner's request id.
        request_id -> Text,
        /// The operation it was used with.
        operation -> Text,
        /// Canonical XML of the response body element.
        response -> Text,
        /// Unix seconds.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// The store's counters (shared with `store::schema`).
    meta (key) {
        /// Counter name.
        key -> Text,
        /// Counter value.
        value -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    prov_accounts,
    prov_services,
    prov_devices,
    prov_features
);
