//! Configuration: embedded defaults (a working local setup with no file at all), overridden by a
//! TOML file (`--config`), overridden by `PARTNERGATE_*` environment variables, overridden by
//! command-line flags. Values are parsed into real types once, at startup; every invalid key is
//! reported at once.
//!
//! Partner data (keys, allowlists, permissions, rates) is not configuration: it lives in the
//! database and reaches the hot path as a snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::store::Rate;

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the partner-facing listener binds.
    pub listen: SocketAddr,
    /// The public base URL partners reach the gateway at (for `soap:address` and
    /// `schemaLocation` in the served WSDL); default: derived from the request's Host.
    pub public_url: Option<String>,
    /// `public_hosts`: host names (with an optional port) a `Host` header may name to have the
    /// published contract point at it when `public_url` is not set.
    pub public_hosts: Vec<String>,
    /// `gate.*`: who may open a connection at all.
    pub gate: GateConfig,
    /// Database URL: a SQLite path (default `partnergate.db`) or `postgres://…`.
    pub database_url: String,
    /// TLS on the partner listener (PEM files); plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// The partner API layer partnergate forwards to; `None` runs it in process.
    pub upstream: UpstreamConfig,
    /// Request limits.
    pub limits: Limits,
    /// Proxies whose forwarding header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `trusted_proxy_header`: the one header those proxies write (`x-forwarded-for`, the
    /// default, or `forwarded`); the other is never read.
    pub trusted_proxy_header: ProxyHeader,
    /// The rate for partners with none of their own and no group rate.
    pub default_rate: Rate,
    /// `callback.default_rate_per_second`, `callback.default_burst`: the rate of callbacks to
    /// the BSS of a partner without a callback rate of its own (default
    /// [`crate::throttle::DEFAULT_CALLBACK_RATE`], 5/s burst 10; zero is refused, as for
    /// `throttle.*`: a partner that takes more gets a higher rate of its own).
    pub default_callback_rate: Rate,
    /// `throttle.cluster_sync_ms`: how often the nodes on one PostgreSQL exchange what they
    /// admitted, so each limit holds across the cluster; zero: every node applies the limits
    /// on its own (`crate::throttle::cluster`).
    pub cluster_sync: Duration,
    /// How often the partner snapshot is checked for changes.
    pub refresh_interval: Duration,
    /// JSON log lines instead of human-readable ones.
    pub log_json: bool,
    /// How long INFO lines may wait in the log buffer (`log_flush_ms`; zero: unbuffered).
    pub log_flush: Duration,
    /// HTTP status of faults: SOAP 1.1 (`faults.soap11_status`: `wsi` or `semantic`) and SOAP
    /// 1.2 (`faults.soap12_status`: `http-binding` or `semantic`).
    pub fault_status: StatusModes,
    /// How often usage statistics are added to the database (`stats.flush_interval_ms`).
    pub stats_flush_interval: Duration,
    /// How long per-minute usage rows are kept (`stats.retention_days`; zero: for ever).
    pub stats_retention: Duration,
    /// `stats.max_pending_rows`: at most this many usage rows (minute × partner × operation ×
    /// outcome) wait in memory while the database cannot be written (default 20,000); beyond
    /// it, see `stats::Pending`.
    pub stats_max_pending_rows: usize,
    /// `database_checkout_timeout_ms`: how long a partner call through the embedded partner API
    /// layer waits for a database connection before it fails with `UpstreamUnavailableFault`
    /// (default 500 ms).
    pub database_checkout_timeout: Duration,
    /// Peers allowed to read `GET /metrics` on the partner listener (`metrics.allow`).
    pub metrics_allow: Vec<IpNet>,
    /// The callback direction (`callback.*`).
    pub callback: CallbackConfig,
    /// The admin HTTP API (`admin.*`).
    pub admin: AdminConfig,
    /// Partner enrollment (`enrollment.*`).
    pub enrollment: EnrollmentConfig,
    /// OpenTelemetry traces (`tracing.*`).
    pub tracing: TracingConfig,
}

/// The admin HTTP API's listener: off unless a token is configured.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// `admin.listen`: where it binds (default `127.0.0.1:8090`, beside the partner listener's
    /// 8080 and the standalone partner API layer's 8081).
    pub listen: SocketAddr,
    /// `admin.token` / `PARTNERGATE_ADMIN_TOKEN`: the bearer token (at least 24 characters),
    /// kept as its hash; `None`: no admin listener.
    pub token: Option<crate::secret::AdminToken>,
    /// `admin.session_lifetime_ms`: how long a dashboard login lasts (absolute, from the
    /// login; default 8 hours).
    pub session_lifetime: Duration,
    /// `admin.cookie_secure`: mark the dashboard's cookies `Secure` (and send HSTS). Implied by
    /// `admin.tls`; set it when operators reach a plain-HTTP admin listener through TLS (a
    /// terminating proxy), so the browser never sends the session cookie in clear.
    pub cookie_secure: bool,
    /// `admin.login_max_failures`: failed dashboard logins of one name before it is locked (an
    /// address: four times as many; default 5).
    pub login_max_failures: u32,
    /// `admin.login_lock_ms`: the first lock's length, doubled by each further failure up to 15
    /// minutes (default 30 s).
    pub login_lock: Duration,
    /// `admin.tls.cert`, `admin.tls.key`: the admin listener serves HTTPS with this
    /// certificate (reloaded on SIGHUP).
    pub tls: Option<TlsConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            token: None,
            session_lifetime: Duration::from_secs(8 * 3600),
            cookie_secure: false,
            login_max_failures: 5,
            login_lock: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// The accept gate: a connection from an address outside every active partner's allowlist,
/// `callback.allowed_callers`, `metrics.allow`, `trusted_proxies`, `enrollment.allow` (when
/// enrollment is enabled) and `gate.also_allow` cannot succeed at anything, so it is closed before a byte is read.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// `gate.enabled` (default true).
    pub enabled: bool,
    /// `gate.also_allow`: further networks to admit: the load balancer's health checks, hosts
    /// that read the published contract.
    pub also_allow: Vec<IpNet>,
    /// `gate.log_interval_ms`: a refused address is logged at most once per interval.
    pub log_interval: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            enabled: true,
            also_allow: Vec::new(),
            log_interval: Duration::from_secs(60),
        }
    }
}

/// The upstream partner API layer.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Its SOAP endpoint (`http://` or `https://`); `None`: in process.
    pub url: Option<String>,
    /// Extra CA certificate (PEM) to trust for an `https://` upstream.
    pub ca_file: Option<PathBuf>,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Time for the whole response after the request was sent.
    pub response_timeout: Duration,
    /// Largest response body accepted from the upstream.
    pub max_response_bytes: usize,
    /// Shared secret sent to a standalone partner API layer (header `X-Partnergate-Gateway-Secret`).
    pub gateway_secret: Option<String>,
    /// The client certificate and key presented to an `https://` upstream that asks for one
    /// (`upstream.client_cert`, `upstream.client_key`; mutual TLS).
    pub client: Option<TlsConfig>,
}

/// Every bound on a request. Each has a default, a config key and a fault that names it.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `limits.body_max_bytes`: largest request body.
    pub body_max_bytes: usize,
    /// `limits.header_read_timeout_ms`: time to receive the request line and headers.
    pub header_read_timeout: Duration,
    /// `limits.body_read_timeout_ms`: time to receive the whole body after the headers.
    pub body_read_timeout: Duration,
    /// `limits.keepalive_idle_timeout_ms`: an idle keep-alive connection is closed after this.
    pub keepalive_idle_timeout: Duration,
    /// `limits.max_connections`: concurrent connections; more wait in the kernel backlog (idle
    /// keep-alive connections are closed first when fewer than a tenth are left).
    pub max_connections: usize,
    /// `limits.max_header_bytes`: request line plus headers.
    pub max_header_bytes: usize,
    /// `limits.max_connections_per_address`: concurrent connections from one IPv4 address or
    /// one IPv6 /64.
    pub max_connections_per_address: usize,
    /// `limits.new_connections_per_second_per_address` and
    /// `limits.new_connections_burst_per_address`: how fast one address (IPv6: one /64) may
    /// open connections.
    pub new_connections_per_address: Rate,
    /// `limits.min_receive_bytes_per_second`: the slowest a client may send a request's header
    /// or body, measured over every `limits.min_receive_window_ms` (0: off).
    pub min_receive_bytes_per_second: u32,
    /// `limits.min_receive_window_ms`: the window the receive rate is measured over.
    pub min_receive_window: Duration,
    /// XML structure bounds.
    pub xml: XmlLimits,
    /// `limits.max_in_flight_per_partner`: one partner's requests being processed at once.
    pub max_in_flight_per_partner: usize,
}

/// Bounds on the XML document, checked by a streaming pass before anything else reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// `limits.xml.max_depth`: element nesting, Envelope included.
    pub max_depth: usize,
    /// `limits.xml.max_attributes`: attributes per element, namespace declarations excluded.
    pub max_attributes: usize,
    /// `limits.xml.max_namespace_declarations`: namespace declarations per element.
    pub max_namespace_declarations: usize,
    /// `limits.xml.max_children`: child elements per element.
    pub max_children: usize,
    /// `limits.xml.max_name_bytes`: element and attribute name length.
    pub max_name_bytes: usize,
    /// `limits.xml.max_text_bytes`: one text node (after joining references and CDATA).
    pub max_text_bytes: usize,
    /// `limits.xml.max_attribute_value_bytes`: one attribute value.
    pub max_attribute_value_bytes: usize,
    /// `limits.xml.max_elements`: elements in the whole document.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    /// XML threat-protection products default to depth 50–100, 100 attributes, 1 MiB text;
    /// these are tightened to what the contract needs: its deepest message is 8 elements deep
    /// (Envelope/Body/…/AllowList), its largest list 200 entries (ListServicesResponse), its
    /// longest value 2,000 characters (FreeText, ≤ 8,000 bytes of UTF-8), and it has no
    /// attributes at all (SOAP header attributes need a few).
    fn default() -> Self {
        XmlLimits {
            max_depth: 24,
            max_attributes: 8,
            max_namespace_declarations: 16,
            max_children: 256,
            max_name_bytes: 128,
            max_text_bytes: 8 * 1024,
            max_attribute_value_bytes: 1024,
            max_elements: 20_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // The largest partner request is a few KiB; 256 KiB leaves room for bulk use.
            body_max_bytes: 256 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keepalive_idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_header_bytes: 16 * 1024,
            // A partner's BSS keeps a pool of a few dozen connections and opens a handful a
            // second; one address may hold an eighth of the listener.
            max_connections_per_address: 512,
            new_connections_per_address: Rate {
                per_second: NonZeroU32::MIN.saturating_add(199),
                burst: NonZeroU32::MIN.saturating_add(399),
            },
            // A SOAP request is a few KiB: a client sends it in milliseconds. 512 B/s over
            // 5 s lets a 2.5 KiB request take 5 s and a 256 KiB one trickle at a modem's pace,
            // and cuts a connection that sends nothing for 5 s in the middle of a request.
            min_receive_bytes_per_second: 512,
            min_receive_window: Duration::from_secs(5),
            xml: XmlLimits::default(),
            max_in_flight_per_partner: crate::throttle::DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(20),
            max_response_bytes: 4 * 1024 * 1024,
            gateway_secret: None,
            client: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            public_hosts: Vec::new(),
            gate: GateConfig::default(),
            database_url: "partnergate.db".into(),
            tls: None,
            upstream: UpstreamConfig::default(),
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            trusted_proxy_header: ProxyHeader::default(),
            default_rate: Rate {
                per_second: NonZeroU32::MIN.saturating_add(19),
                burst: NonZeroU32::MIN.saturating_add(39),
            },
            default_callback_rate: crate::throttle::DEFAULT_CALLBACK_RATE,
            cluster_sync: crate::throttle::cluster::DEFAULT_SYNC_INTERVAL,
            refresh_interval: Duration::from_millis(250),
            log_json: false,
            log_flush: Duration::from_millis(100),
            fault_status: StatusModes::default(),
            stats_flush_interval: Duration::from_secs(5),
            stats_retention: Duration::from_secs(90 * 86_400),
            stats_max_pending_rows: DEFAULT_MAX_PENDING_ROWS,
            database_checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            callback: CallbackConfig::default(),
            admin: AdminConfig::default(),
            enrollment: EnrollmentConfig::default(),
            tracing: TracingConfig::default(),
            metrics_allow: vec![
                IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
        }
    }
}

/// Everything wrong with a configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// Keys whose values are never repeated in error messages.
const SECRET_KEYS: &[&str] = &["admin.token", "upstream.gateway_secret"];

impl Config {
    /// Builds the configuration from the defaults and `sources`, later sources winning.
    pub fn from_sources(sources: &[&dyn Source]) -> Result<Config, ConfigError> {
        let mut merged = BTreeMap::new();
        for source in sources {
            merged.extend(source.settings());
        }
        let mut c = Config::default();
        let mut errors = Vec::new();
        for (key, value) in &merged {
            if !source::KEYS.contains(&key.as_str()) {
                // Never its value: it may be a misspelt secret.
                errors.push(format!("{key}: unknown key"));
                continue;
            }
            if let Err(e) = c.set(key, value) {
                if SECRET_KEYS.contains(&key.as_str()) {
                    errors.push(format!("{key}: {e}"));
                } else {
                    errors.push(format!("{key} = {value:?}: {e}"));
                }
            }
        }
        let pairs = [
            ("tls.cert", "tls.key", &c.tls),
            ("admin.tls.cert", "admin.tls.key", &c.admin.tls),
            (
                "upstream.client_cert",
                "upstream.client_key",
                &c.upstream.client,
            ),
            (
                "callback.client_cert",
                "callback.client_key",
                &c.callback.client,
            ),
        ];
        for (cert, key, pair) in pairs {
            if TlsConfig::incomplete(pair) {
                errors.push(format!("{cert} and {key} must be given together"));
            }
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError(errors))
        }
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let ms = |v: &str| -> Result<Duration, String> {
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| "expected milliseconds".to_string())?;
            if n == 0 {
                return Err("must be more than 0".into());
            }
            Ok(Duration::from_millis(n))
        };
        let size = |v: &str| -> Result<usize, String> {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| "expected a positive integer".to_string())?;
            if n == 0 {
                return Err("must be more than 0".into());
            }
            Ok(n)
        };
        let nonzero = |v: &str| -> Result<NonZeroU32, String> {
            v.trim()
                .parse::<NonZeroU32>()
                .map_err(|_| "expected an integer of at least 1".to_string())
        };
        let l = &mut self.limits;
        match key {
            "listen" => {
                self.listen = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected IP:PORT".to_string())?
            }
            "public_url" => {
                let v = value.trim().trim_end_matches('/');
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err("expected an http:// or https:// URL".into());
                }
                self.public_url = Some(v.to_string());
            }
            "public_hosts" => {
                self.public_hosts = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|h| {
                        if valid_host(h) {
                            Ok(h.to_ascii_lowercase())
                        } else {
                            Err(format!("{h:?} is not a host name with an optional port"))
                        }
                    })
                    .collect::<Result<_, _>>()?;
            }
            "gate.enabled" => {
                self.gate.enabled = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?
            }
            "gate.also_allow" => {
                self.gate.also_allow = nets(value)?;
            }
            "gate.log_interval_ms" => self.gate.log_interval = ms(value)?,
            "database_url" => self.database_url = value.trim().to_string(),
            "database_checkout_timeout_ms" => self.database_checkout_timeout = ms(value)?,
            "log_json" => {
                self.log_json = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?
            }
            // 0 is allowed here: every log line written at once.
            "log_flush_ms" => {
                self.log_flush = Duration::from_millis(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| "expected milliseconds (0: unbuffered)".to_string())?,
                )
            }
            "refresh_interval_ms" => self.refresh_interval = ms(value)?,
            "throttle.cluster_sync_ms" => {
                let max = crate::throttle::cluster::MAX_SYNC_INTERVAL;
                let every: u64 = value.trim().parse().map_err(|_| {
                    format!(
                        "expected milliseconds, 0 to {} (0: limits per node)",
                        max.as_millis()
                    )
                })?;
                if u128::from(every) > max.as_millis() {
                    return Err(format!(
                        "at most {} ms (the bound on over-admission grows with it)",
                        max.as_millis()
                    ));
                }
                self.cluster_sync = Duration::from_millis(every);
            }
            "trusted_proxies" => {
                self.trusted_proxies = nets(value)?;
            }
            "stats.flush_interval_ms" => self.stats_flush_interval = ms(value)?,
            "stats.retention_days" => {
                let days: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected whole days (0: keep for ever)".to_string())?;
                if days > 36_500 {
                    return Err("at most 36500 days (0: keep for ever)".into());
                }
                self.stats_retention = Duration::from_secs(days * 86_400);
            }
            "stats.max_pending_rows" => self.stats_max_pending_rows = size(value)?,
            "callback.allowed_callers" => {
                self.callback.allowed_callers = nets(value)?;
            }
            "callback.allow_http" => {
                self.callback.allow_http = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?;
            }
            "callback.connect_timeout_ms" => self.callback.connect_timeout = ms(value)?,
            "callback.default_rate_per_second" => {
                self.default_callback_rate.per_second = nonzero(value)?;
            }
            "callback.default_burst" => self.default_callback_rate.burst = nonzero(value)?,
            "callback.response_timeout_ms" => self.callback.response_timeout = ms(value)?,
            "admin.listen" => {
                self.admin.listen = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected IP:PORT".to_string())?
            }
            "admin.token" => self.admin.token = Some(crate::secret::AdminToken::new(value)?),
            "admin.session_lifetime_ms" => {
                let d = ms(value)?;
                if d < Duration::from_secs(1) {
                    return Err("expected at least 1000 (one second)".into());
                }
                self.admin.session_lifetime = d;
            }
            "admin.cookie_secure" => {
                self.admin.cookie_secure = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected true or false".to_string())?;
            }
            "admin.login_max_failures" => {
                self.admin.login_max_failures = match value.trim().parse::<u32>() {
                    Ok(n @ 1..=1000) => n,
                    _ => return Err("expected a number of failures, 1 to 1000".into()),
                };
            }
            "admin.login_lock_ms" => {
                let d = ms(value)?;
                if d < Duration::from_millis(100) || d > Duration::from_secs(900) {
                    return Err("expected 100 to 900000 (15 minutes)".into());
                }
                self.admin.login_lock = d;
            }
            "metrics.allow" => {
                self.metrics_allow = nets(value)?;
            }
            k if k.starts_with("enrollment.") => {
                self.enrollment.set(&k["enrollment.".len()..], value)?;
            }
            k if k.starts_with("tracing.") => self.tracing.set(&k["tracing.".len()..], value)?,
            "faults.soap11_status" => {
                self.fault_status.soap11 = match value.trim() {
                    "wsi" => Soap11Status::WsI,
                    "semantic" => Soap11Status::Semantic,
                    _ => {
                        return Err("expected \"wsi\" (HTTP 500, WS-I R1126) or \"semantic\"".into())
                    }
                }
            }
            "faults.soap12_status" => {
                self.fault_status.soap12 = match value.trim() {
                    "http-binding" => Soap12Status::HttpBinding,
                    "semantic" => Soap12Status::Semantic,
                    _ => return Err(
                        "expected \"http-binding\" (Sender 400, others 500; SOAP 1.2 Part 2) or \"semantic\"".into(),
                    ),
                }
            }
            "tls.cert" => TlsConfig::set(&mut self.tls, true, value),
            "tls.key" => TlsConfig::set(&mut self.tls, false, value),
            "admin.tls.cert" => TlsConfig::set(&mut self.admin.tls, true, value),
            "admin.tls.key" => TlsConfig::set(&mut self.admin.tls, false, value),
            "upstream.client_cert" => TlsConfig::set(&mut self.upstream.client, true, value),
            "upstream.client_key" => TlsConfig::set(&mut self.upstream.client, false, value),
            "callback.client_cert" => TlsConfig::set(&mut self.callback.client, true, value),
            "callback.client_key" => TlsConfig::set(&mut self.callback.client, false, value),
            "upstream.url" => {
                let v = value.trim();
                if v.is_empty() {
                    self.upstream.url = None;
                } else if v.starts_with("http://") || v.starts_with("https://") {
                    self.upstream.url = Some(v.to_string());
                } else {
                    return Err("expected an http:// or https:// URL".into());
                }
            }
            "upstream.ca_file" => self.upstream.ca_file = Some(PathBuf::from(value.trim())),
            "upstream.connect_timeout_ms" => self.upstream.connect_timeout = ms(value)?,
            "upstream.response_timeout_ms" => self.upstream.response_timeout = ms(value)?,
            "upstream.max_response_bytes" => self.upstream.max_response_bytes = size(value)?,
            "upstream.gateway_secret" => {
                if value.len() < 16 {
                    return Err("use at least 16 characters".into());
                }
                self.upstream.gateway_secret = Some(value.to_string());
            }
            "throttle.default_rate_per_second" => self.default_rate.per_second = nonzero(value)?,
            "throttle.default_burst" => self.default_rate.burst = nonzero(value)?,
            "limits.body_max_bytes" => l.body_max_bytes = size(value)?,
            "limits.header_read_timeout_ms" => l.header_read_timeout = ms(value)?,
            "limits.body_read_timeout_ms" => l.body_read_timeout = ms(value)?,
            "limits.keepalive_idle_timeout_ms" => l.keepalive_idle_timeout = ms(value)?,
            "limits.max_connections" => l.max_connections = size(value)?,
            "limits.max_header_bytes" => l.max_header_bytes = size(value)?,
            "limits.max_connections_per_address" => l.max_connections_per_address = size(value)?,
            "limits.new_connections_per_second_per_address" => {
                l.new_connections_per_address.per_second = nonzero(value)?
            }
            "limits.new_connections_burst_per_address" => {
                l.new_connections_per_address.burst = nonzero(value)?
            }
            // 0 is allowed here: no rate floor (the total timeouts still apply).
            "limits.min_receive_bytes_per_second" => {
                l.min_receive_bytes_per_second = value
                    .trim()
                    .parse()
                    .map_err(|_| "expected bytes per second (0: off)".to_string())?
            }
            "limits.min_receive_window_ms" => l.min_receive_window = ms(value)?,
            "limits.xml.max_depth" => l.xml.max_depth = size(value)?,
            "limits.xml.max_attributes" => l.xml.max_attributes = size(value)?,
            "limits.xml.max_namespace_declarations" => {
                l.xml.max_namespace_declarations = size(value)?
            }
            "limits.xml.max_children" => l.xml.max_children = size(value)?,
            "limits.xml.max_name_bytes" => l.xml.max_name_bytes = size(value)?,
            "limits.xml.max_text_bytes" => l.xml.max_text_bytes = size(value)?,
            "limits.xml.max_attribute_value_bytes" => {
                l.xml.max_attribute_value_bytes = size(value)?
            }
            "limits.xml.max_elements" => l.xml.max_elements = size(value)?,
            // Hostile networks (issue 14, items 5, 8, 10).
            "trusted_proxy_header" => {
                self.trusted_proxy_header = ProxyHeader::parse(value)
                    .ok_or_else(|| {
                        "expected \"x-forwarded-for\" or \"forwarded\" (the header your proxies write)"
                            .to_string()
                    })?;
            }
            "callback.allowed_networks" => {
                self.callback.allowed_networks = nets(value)?;
            }
            "limits.max_in_flight_per_partner" => l.max_in_flight_per_partner = size(value)?,
            _ => return Err("unknown key".into()),
        }
        Ok(())
    }
}

mod settings;
mod source;
mod values;

pub use settings::{
    CallbackConfig, EnrollmentConfig, ProxyHeader, Soap11Status, Soap12Status, StatusModes,
    TlsConfig, TracingConfig, DEFAULT_CHECKOUT_TIMEOUT, DEFAULT_MAX_PENDING_ROWS,
};

pub use source::{from_env_pairs, Environment, Source, TomlFile, KEYS};
pub use values::{nets, parse_net, valid_host};

#[cfg(test)]
mod tests;
