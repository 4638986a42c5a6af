//! Where settings come from: `PARTNERGATE_*` environment variables, a TOML file, or a map (tests),
//! each flattened to `section.key` → text over the one list of known keys.

use std::collections::BTreeMap;

use super::ConfigError;

/// Where settings come from, as flat `section.key` → text pairs (tests pass a map).
pub trait Source {
    /// All settings this source defines.
    fn settings(&self) -> BTreeMap<String, String>;
}

/// `PARTNERGATE_LIMITS_BODY_MAX_BYTES=…` → `limits.body_max_bytes`, etc. (the first `_`
/// after a section name is the separator; keys are looked up against the known list).
pub struct Environment;

impl Source for Environment {
    fn settings(&self) -> BTreeMap<String, String> {
        from_env_pairs(std::env::vars())
    }
}

/// Maps `PARTNERGATE_*` variables onto known keys.
pub fn from_env_pairs(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("PARTNERGATE_") else {
            continue;
        };
        let wanted = rest.to_ascii_lowercase();
        if let Some(key) = KEYS.iter().find(|k| k.replace('.', "_") == wanted) {
            out.insert((*key).to_string(), value);
        }
    }
    out
}

/// Every key the configuration knows, as written in the TOML file.
pub const KEYS: &[&str] = &[
    "listen",
    "public_url",
    "public_hosts",
    "gate.enabled",
    "gate.also_allow",
    "gate.log_interval_ms",
    "database_url",
    "log_json",
    "log_flush_ms",
    "refresh_interval_ms",
    "trusted_proxies",
    "faults.soap11_status",
    "faults.soap12_status",
    "stats.flush_interval_ms",
    "stats.retention_days",
    "callback.allowed_callers",
    "callback.allow_http",
    "callback.connect_timeout_ms",
    "callback.response_timeout_ms",
    "callback.default_rate_per_second",
    "callback.default_burst",
    "metrics.allow",
    "enrollment.enabled",
    "enrollment.allow",
    "enrollment.max_pending",
    "enrollment.rate_per_minute",
    "enrollment.burst",
    "enrollment.terms_version",
    "tracing.otlp_endpoint",
    "tracing.service_name",
    "tracing.sample_ratio",
    "tracing.trusted_traceparent",
    "admin.listen",
    "admin.token",
    "admin.session_lifetime_ms",
    "admin.cookie_secure",
    "admin.login_max_failures",
    "admin.login_lock_ms",
    "tls.cert",
    "tls.key",
    "upstream.url",
    "upstream.ca_file",
    "upstream.connect_timeout_ms",
    "upstream.response_timeout_ms",
    "upstream.max_response_bytes",
    "upstream.gateway_secret",
    "throttle.default_rate_per_second",
    "throttle.default_burst",
    "throttle.cluster_sync_ms",
    "limits.body_max_bytes",
    "limits.header_read_timeout_ms",
    "limits.body_read_timeout_ms",
    "limits.keepalive_idle_timeout_ms",
    "limits.max_connections",
    "limits.max_header_bytes",
    "limits.max_connections_per_address",
    "limits.new_connections_per_second_per_address",
    "limits.new_connections_burst_per_address",
    "limits.min_receive_bytes_per_second",
    "limits.min_receive_window_ms",
    "limits.xml.max_depth",
    "limits.xml.max_attributes",
    "limits.xml.max_namespace_declarations",
    "limits.xml.max_children",
    "limits.xml.max_name_bytes",
    "limits.xml.max_text_bytes",
    "limits.xml.max_attribute_value_bytes",
    "limits.xml.max_elements",
    // Hostile networks (issue 14, items 5, 8, 10): forwarding header, callback targets,
    // requests in flight.
    "trusted_proxy_header",
    "callback.allowed_networks",
    "limits.max_in_flight_per_partner",
    // Database outage (issue 15, part 5): the embedded layer's wait for a connection, and the
    // statistics kept in memory meanwhile.
    "database_checkout_timeout_ms",
    "stats.max_pending_rows",
    // Mutual TLS (issue 18): the clients' certificates, the admin listener's TLS.
    "upstream.client_cert",
    "upstream.client_key",
    "callback.client_cert",
    "callback.client_key",
    "admin.tls.cert",
    "admin.tls.key",
];

/// A TOML file flattened to `section.key` → text.
pub struct TomlFile {
    settings: BTreeMap<String, String>,
}

impl TomlFile {
    /// Reads and flattens a TOML file. Unknown keys are kept, so that
    /// [`Config::from_sources`](super::Config::from_sources) reports them together with every
    /// invalid value, in one pass.
    pub fn read(path: &std::path::Path) -> Result<TomlFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
        Self::parse(&text).map_err(|ConfigError(errors)| {
            ConfigError(
                errors
                    .into_iter()
                    .map(|e| format!("{}: {e}", path.display()))
                    .collect(),
            )
        })
    }

    /// Flattens TOML text (only a TOML syntax error is an error here).
    pub fn parse(text: &str) -> Result<TomlFile, ConfigError> {
        let value: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
        let mut settings = BTreeMap::new();
        flatten("", &toml::Value::Table(value), &mut settings);
        Ok(TomlFile { settings })
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) if !KEYS.contains(&prefix) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.insert(prefix.to_string(), parts.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

impl Source for TomlFile {
    fn settings(&self) -> BTreeMap<String, String> {
        self.settings.clone()
    }
}

impl Source for BTreeMap<String, String> {
    fn settings(&self) -> BTreeMap<String, String> {
        self.clone()
    }
}
