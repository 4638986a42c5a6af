//! Unit tests of `config` (beside the module, in their own file).
use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn defaults_run_locally() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url, "partnergate.db");
    assert!(c.tls.is_none() && c.upstream.url.is_none());
}

#[test]
fn later_sources_win_and_all_errors_are_reported() {
    let file = TomlFile::parse(
        "listen = \"127.0.0.1:9000\"\n[limits]\nbody_max_bytes = 1000\n[limits.xml]\nmax_depth = 10\n",
    )
    .expect("toml");
    let env = map(&[("listen", "127.0.0.1:9001")]);
    let c = Config::from_sources(&[&file, &env]).expect("valid");
    assert_eq!(c.listen.port(), 9001);
    assert_eq!(c.limits.body_max_bytes, 1000);
    assert_eq!(c.limits.xml.max_depth, 10);
    let bad = map(&[
        ("listen", "nope"),
        ("limits.body_max_bytes", "0"),
        ("upstream.url", "ftp://x"),
    ]);
    let err = Config::from_sources(&[&bad]).expect_err("invalid");
    assert_eq!(err.0.len(), 3, "{err}");
}

#[test]
fn stats_retention_in_days_zero_keeps_for_ever() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(c.stats_retention, Duration::from_secs(90 * 86_400));
    let c = Config::from_sources(&[&map(&[("stats.retention_days", "0")])]).expect("0");
    assert!(c.stats_retention.is_zero());
    for bad in ["-1", "1.5", "36501"] {
        let err = Config::from_sources(&[&map(&[("stats.retention_days", bad)])]).expect_err(bad);
        assert!(err.to_string().contains("stats.retention_days"), "{err}");
    }
}

#[test]
fn log_flush_zero_means_unbuffered() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(c.log_flush, Duration::from_millis(100));
    let file = TomlFile::parse("log_flush_ms = 0\n").expect("toml");
    let c = Config::from_sources(&[&file]).expect("0 is allowed");
    assert!(c.log_flush.is_zero());
    let err = Config::from_sources(&[&map(&[("log_flush_ms", "-1")])]).expect_err("negative");
    assert!(err.to_string().contains("log_flush_ms"), "{err}");
}

#[test]
fn unknown_file_keys_are_errors() {
    let file = TomlFile::parse("[limits]\nbody_max = 1\n").expect("toml");
    let err = Config::from_sources(&[&file]).expect_err("unknown key");
    assert!(err.to_string().contains("limits.body_max"), "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");
    // A misspelt secret is not echoed.
    let file = TomlFile::parse("[admin]\ntokn = \"s3cret-value\"\n").expect("toml");
    let err = Config::from_sources(&[&file]).expect_err("unknown key");
    assert!(err.to_string().contains("admin.tokn: unknown key"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// Unknown keys and invalid values of a file are reported in one pass (they used to be two
/// runs: the unknown keys first, the values after they were fixed).
#[test]
fn unknown_keys_and_bad_values_are_reported_together() {
    let file = TomlFile::parse(
        "listen = \"nope\"\nlisten_port = 1\n[limits]\nbody_max = 1\nbody_max_bytes = 0\n\
         [nosuch]\nkey = \"x\"\n",
    )
    .expect("toml");
    let err = Config::from_sources(&[&file]).expect_err("invalid");
    let text = err.to_string();
    assert_eq!(err.0.len(), 5, "{text}");
    for key in [
        "listen = \"nope\"",
        "listen_port",
        "limits.body_max: unknown key",
        "limits.body_max_bytes",
        "nosuch.key",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
}

#[test]
fn environment_names_map_onto_keys() {
    let vars = vec![
        (
            "PARTNERGATE_LIMITS_XML_MAX_DEPTH".to_string(),
            "7".to_string(),
        ),
        (
            "PARTNERGATE_UPSTREAM_URL".to_string(),
            "http://127.0.0.1:1".to_string(),
        ),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let s = from_env_pairs(vars.into_iter());
    assert_eq!(s.get("limits.xml.max_depth").map(String::as_str), Some("7"));
    assert_eq!(
        s.get("upstream.url").map(String::as_str),
        Some("http://127.0.0.1:1")
    );
    assert_eq!(s.len(), 2);
}

#[test]
fn trusted_proxies_parse_addresses_and_cidrs() {
    let c = Config::from_sources(&[&map(&[(
        "trusted_proxies",
        "10.0.0.0/8, 192.0.2.7,2001:db8::/32",
    )])])
    .expect("valid");
    assert_eq!(c.trusted_proxies.len(), 3);
    assert!(Config::from_sources(&[&map(&[("trusted_proxies", "10.0.0.0/33")])]).is_err());
    let err = parse_net("10.1.2.3/8").expect_err("host bits");
    assert!(err.contains("did you mean 10.0.0.0/8"), "{err}");
}

#[test]
fn admin_listener_needs_a_long_token_that_errors_never_repeat() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8090");
    assert!(c.admin.token.is_none(), "off without a token");
    let token = "0123456789abcdef01234567";
    let c = Config::from_sources(&[&map(&[("admin.token", token)])]).expect("valid");
    assert!(c.admin.token.as_ref().is_some_and(|t| t.matches(token)));
    assert!(!format!("{c:?}").contains(token), "Debug shows no token");
    let short = "short-secret-123";
    let err = Config::from_sources(&[&map(&[("admin.token", short)])]).expect_err("short");
    let text = err.to_string();
    assert!(
        text.contains("admin.token") && text.contains("24"),
        "{text}"
    );
    assert!(!text.contains(short), "the error repeats the token: {text}");
    let vars = vec![
        ("PARTNERGATE_ADMIN_TOKEN".to_string(), token.to_string()),
        (
            "PARTNERGATE_ADMIN_LISTEN".to_string(),
            "127.0.0.1:9999".to_string(),
        ),
    ];
    let s = from_env_pairs(vars.into_iter());
    assert_eq!(s.get("admin.token").map(String::as_str), Some(token));
    assert_eq!(
        s.get("admin.listen").map(String::as_str),
        Some("127.0.0.1:9999")
    );
}

#[test]
fn hostile_network_keys() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(
        c.trusted_proxy_header,
        crate::allowlist::ProxyHeader::XForwardedFor
    );
    assert!(c.callback.allowed_networks.is_empty(), "closed by default");
    assert_eq!(c.limits.max_in_flight_per_partner, 256);
    let file = TomlFile::parse(
        "trusted_proxy_header = \"Forwarded\"\n[callback]\nallowed_networks = [\"127.0.0.0/8\", \"::1\"]\n[limits]\nmax_in_flight_per_partner = 2\n",
    )
    .expect("toml");
    let c = Config::from_sources(&[&file]).expect("valid");
    assert_eq!(
        c.trusted_proxy_header,
        crate::allowlist::ProxyHeader::Forwarded
    );
    assert_eq!(
        c.callback
            .allowed_networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["127.0.0.0/8", "::1/128"]
    );
    assert_eq!(c.limits.max_in_flight_per_partner, 2);
    let bad = map(&[
        ("trusted_proxy_header", "x-real-ip"),
        ("callback.allowed_networks", "10.1.2.3/8"),
        ("limits.max_in_flight_per_partner", "0"),
    ]);
    let err = Config::from_sources(&[&bad]).expect_err("invalid");
    assert_eq!(err.0.len(), 3, "{err}");
    let vars = vec![(
        "PARTNERGATE_TRUSTED_PROXY_HEADER".to_string(),
        "forwarded".to_string(),
    )];
    let s = from_env_pairs(vars.into_iter());
    assert_eq!(
        s.get("trusted_proxy_header").map(String::as_str),
        Some("forwarded")
    );
}

#[test]
fn outage_settings_have_defaults_and_refuse_zero() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(c.database_checkout_timeout, Duration::from_millis(500));
    assert_eq!(
        c.stats_max_pending_rows,
        crate::stats::DEFAULT_MAX_PENDING_ROWS
    );
    let c = Config::from_sources(&[&map(&[
        ("database_checkout_timeout_ms", "250"),
        ("stats.max_pending_rows", "3"),
    ])])
    .expect("set");
    assert_eq!(c.database_checkout_timeout, Duration::from_millis(250));
    assert_eq!(c.stats_max_pending_rows, 3);
    for key in ["database_checkout_timeout_ms", "stats.max_pending_rows"] {
        let err = Config::from_sources(&[&map(&[(key, "0")])]).expect_err(key);
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn fault_statuses_default_to_the_standards_and_are_set_per_version() {
    use crate::fault::{Soap11Status, Soap12Status, StatusModes};
    let c = Config::from_sources(&[]).expect("defaults");
    assert_eq!(
        c.fault_status,
        StatusModes {
            soap11: Soap11Status::WsI,
            soap12: Soap12Status::HttpBinding
        }
    );
    let file = TomlFile::parse("[faults]\nsoap12_status = \"semantic\"\n").expect("toml");
    let c = Config::from_sources(&[&file]).expect("semantic");
    assert_eq!(c.fault_status.soap12, Soap12Status::Semantic);
    assert_eq!(c.fault_status.soap11, Soap11Status::WsI);
    let both = map(&[
        ("faults.soap11_status", "semantic"),
        ("faults.soap12_status", "http-binding"),
    ]);
    let c = Config::from_sources(&[&file, &both]).expect("both");
    assert_eq!(c.fault_status.soap11, Soap11Status::Semantic);
    assert_eq!(c.fault_status.soap12, Soap12Status::HttpBinding);
    for bad in ["wsi", "400", ""] {
        let err = Config::from_sources(&[&map(&[("faults.soap12_status", bad)])]).expect_err(bad);
        assert!(err.to_string().contains("faults.soap12_status"), "{err}");
    }
}

#[test]
fn every_listed_key_is_one_the_configuration_applies() {
    // KEYS is the one list (the loader's filter, the environment mapping and the example
    // configuration's test in tests/packaging.rs read it): each must reach a setter.
    for key in KEYS {
        let mut c = Config::default();
        if let Err(e) = c.set(key, "") {
            assert_ne!(e, "unknown key", "{key} is listed but never applied");
        }
    }
}

#[test]
fn tracing_is_off_by_default_and_its_keys_are_checked() {
    let c = Config::from_sources(&[]).expect("defaults");
    assert!(c.tracing.otlp_endpoint.is_none(), "off by default");
    assert_eq!(c.tracing.service_name, "partnergate");
    assert_eq!(c.tracing.sample_ratio, 1.0);
    assert!(c.tracing.trusted_traceparent.is_empty());
    let file = TomlFile::parse(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/\"\nservice_name = \"gw-eu\"\n\
         sample_ratio = 0.25\ntrusted_traceparent = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
    )
    .expect("toml");
    let c = Config::from_sources(&[&file]).expect("valid");
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    assert_eq!(c.tracing.service_name, "gw-eu");
    assert_eq!(c.tracing.sample_ratio, 0.25);
    assert_eq!(c.tracing.trusted_traceparent.len(), 2);
    // Empty turns it off again (a later source, e.g. the environment).
    let off = map(&[("tracing.otlp_endpoint", "")]);
    let c = Config::from_sources(&[&file, &off]).expect("valid");
    assert!(c.tracing.otlp_endpoint.is_none());
    let bad = map(&[
        ("tracing.otlp_endpoint", "grpc://collector:4317"),
        ("tracing.sample_ratio", "1.5"),
        ("tracing.service_name", ""),
        ("tracing.trusted_traceparent", "10.1.2.3/8"),
    ]);
    let err = Config::from_sources(&[&bad]).expect_err("invalid");
    assert_eq!(err.0.len(), 4, "{err}");
}
