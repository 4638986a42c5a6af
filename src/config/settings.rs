//! Setting types that other modules read (the callback direction, fault statuses, the
//! forwarding header): plain data defined here, below every module that uses them, so that the
//! configuration depends on nothing above it. Their behaviour lives with their users (e.g.
//! `StatusModes::status` in `fault.rs`, `ProxyHeader` parsing of the header in `allowlist.rs`).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// The default of `stats.max_pending_rows` (statistics waiting for the database).
pub const DEFAULT_MAX_PENDING_ROWS: usize = 20_000;

/// How long a call waits for a database connection by default (`database_checkout_timeout_ms`
/// for the embedded layer; `upstream serve` uses this): with the database down a call fails
/// within it (`UpstreamUnavailableFault` for the partner), and at once while the store knows the
/// database unreachable (see `Store::with_checkout_timeout`).
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// Settings of the callback direction (`callback.*` config keys).
#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// The TSP servers allowed to call back (`callback.allowed_callers`).
    pub allowed_callers: Vec<IpNet>,
    /// Allow `http://` callback URLs (tests and closed networks only; `callback.allow_http`).
    pub allow_http: bool,
    /// Connect timeout to the partner (`callback.connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// Time for the partner's whole answer (`callback.response_timeout_ms`).
    pub response_timeout: Duration,
    /// Largest answer accepted from a partner.
    pub max_response_bytes: usize,
    /// Internal networks callback URLs may reach nevertheless (`callback.allowed_networks`;
    /// default none: loopback, private, link-local … are refused, see [`refused_target`]).
    pub allowed_networks: Vec<IpNet>,
    /// The client certificate and key presented to partners' callback servers that ask for one
    /// (`callback.client_cert`, `callback.client_key`; mutual TLS).
    pub client: Option<TlsConfig>,
}

/// A TLS certificate chain and its private key (PEM files).
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl TlsConfig {
    /// Sets the certificate (`Some(cert)`) or key file of a pair that may not exist yet.
    pub fn set(pair: &mut Option<TlsConfig>, cert: bool, value: &str) {
        let t = pair.get_or_insert_with(|| TlsConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
        });
        let path = PathBuf::from(value.trim());
        if cert {
            t.cert = path;
        } else {
            t.key = path;
        }
    }

    /// Whether a pair that was started lacks one of its two files.
    pub fn incomplete(pair: &Option<TlsConfig>) -> bool {
        pair.as_ref()
            .is_some_and(|t| t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty())
    }
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            allowed_callers: vec![
                IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
            allow_http: false,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            allowed_networks: Vec::new(),
            client: None,
        }
    }
}

/// How SOAP 1.1 faults choose their HTTP status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Soap11Status {
    /// Always 500 (WS-I Basic Profile R1126; what SOAP 1.1 toolkits expect).
    #[default]
    WsI,
    /// The same status as SOAP 1.2 faults.
    Semantic,
}

/// How SOAP 1.2 faults choose their HTTP status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Soap12Status {
    /// The SOAP 1.2 HTTP binding's table (Part 2, 7.5.2.2): `env:Sender` 400, every other fault
    /// 500 (what SOAP 1.2 toolkits read a fault from).
    #[default]
    HttpBinding,
    /// A status that names what happened (403, 404, 429, …).
    Semantic,
}

/// The HTTP status rules of both SOAP versions (`faults.soap11_status`, `faults.soap12_status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusModes {
    /// SOAP 1.1 faults.
    pub soap11: Soap11Status,
    /// SOAP 1.2 faults.
    pub soap12: Soap12Status,
}

/// The forwarding header the trusted proxies write (`trusted_proxy_header`). Only this header is
/// read; the other one is ignored, because proxies pass a client's own header through untouched
/// (nginx, HAProxy and cloud load balancers append to `X-Forwarded-For` and relay `Forwarded`
/// as the client sent it), so believing it would let any caller name its own address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (the default: what most proxies write).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ProxyHeader {
    /// The header's name as written in the configuration (`x-forwarded-for`, `forwarded`).
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
        }
    }

    /// Parses the configuration value (case-insensitive).
    pub fn parse(s: &str) -> Option<ProxyHeader> {
        let s = s.trim();
        [ProxyHeader::XForwardedFor, ProxyHeader::Forwarded]
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(s))
    }
}

/// Settings of partner enrollment (`enrollment.*` config keys; the anonymous endpoint
/// `/soap/enrollment/v1`, `crate::enroll`).
#[derive(Clone, Debug)]
pub struct EnrollmentConfig {
    /// `enrollment.enabled` (default true): when false every call is refused.
    pub enabled: bool,
    /// `enrollment.allow`: the networks that may enroll (default none: closed; every call is
    /// refused). They join the accept gate's union.
    pub allow: Vec<IpNet>,
    /// `enrollment.max_pending` (default 100): requests waiting for an operator at most; more
    /// are refused until some are decided.
    pub max_pending: u64,
    /// `enrollment.rate_per_minute` (default 6): calls per minute and source address.
    pub rate_per_minute: u32,
    /// `enrollment.burst` (default 3): calls one address may make at once.
    pub burst: u32,
    /// `enrollment.terms_version` (default `1`): the partner terms an applicant must accept.
    pub terms_version: String,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            enabled: true,
            allow: Vec::new(),
            max_pending: 100,
            rate_per_minute: 6,
            burst: 3,
            terms_version: "1".into(),
        }
    }
}

impl EnrollmentConfig {
    /// Applies one `enrollment.*` key (`key` without the prefix).
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let count = |max: u64| -> Result<u64, String> {
            match value.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!("expected a number from 1 to {max}")),
            }
        };
        match key {
            "enabled" => {
                self.enabled = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?;
            }
            "allow" => self.allow = super::nets(value)?,
            "max_pending" => self.max_pending = count(100_000)?,
            "rate_per_minute" => {
                self.rate_per_minute = u32::try_from(count(6_000)?).unwrap_or(6_000);
            }
            "burst" => self.burst = u32::try_from(count(1_000)?).unwrap_or(1_000),
            "terms_version" => {
                let v = value.trim();
                let ok = (1..=32).contains(&v.len())
                    && v.bytes().enumerate().all(|(i, b)| {
                        b.is_ascii_alphanumeric() || (i > 0 && matches!(b, b'.' | b'_' | b'-'))
                    });
                if !ok {
                    return Err(
                        "expected 1 to 32 of [A-Za-z0-9._-], starting with a letter or digit"
                            .into(),
                    );
                }
                self.terms_version = v.to_string();
            }
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }
}

/// `tracing.*`: OpenTelemetry traces (`crate::telemetry`), off unless an endpoint is set.
#[derive(Clone, Debug)]
pub struct TracingConfig {
    /// `tracing.otlp_endpoint`: the OTLP/HTTP receiver (`http://127.0.0.1:4318`; spans are
    /// POSTed to `…/v1/traces` as protobuf); empty, the default: tracing off.
    pub otlp_endpoint: Option<String>,
    /// `tracing.service_name`: the `service.name` of every span (default `partnergate`).
    pub service_name: String,
    /// `tracing.sample_ratio`: the share of new traces recorded, 0 to 1 (default 1); a
    /// continued trace follows its caller's sampled flag.
    pub sample_ratio: f64,
    /// `tracing.trusted_traceparent`: the networks whose `traceparent`/`tracestate` is
    /// continued; from anyone else it is ignored and a new trace starts (default: none).
    pub trusted_traceparent: Vec<ipnet::IpNet>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            service_name: "partnergate".into(),
            sample_ratio: 1.0,
            trusted_traceparent: Vec::new(),
        }
    }
}

impl TracingConfig {
    /// Applies one `tracing.*` key (`key` without the prefix).
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "otlp_endpoint" => {
                let v = value.trim();
                if v.is_empty() {
                    self.otlp_endpoint = None;
                    return Ok(());
                }
                let uri: http::Uri = v.parse().map_err(|_| "expected a URL".to_string())?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err("expected an http:// or https:// URL (empty: off)".into());
                }
                self.otlp_endpoint = Some(v.trim_end_matches('/').to_string());
            }
            "service_name" => {
                let v = value.trim();
                if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                    return Err("expected 1 to 128 characters".into());
                }
                self.service_name = v.to_string();
            }
            "sample_ratio" => {
                self.sample_ratio = match value.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => return Err("expected a number from 0 to 1".into()),
                };
            }
            "trusted_traceparent" => self.trusted_traceparent = super::nets(value)?,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }
}
