//! OpenTelemetry tracing (`tracing.*`), off unless `tracing.otlp_endpoint` is set: one server
//! span per SOAP request answered after its body was read, a child span per stage that
//! `stats.rs` times (laid out from the stage times the pipeline records anyway), and a client
//! span around the call to the upstream or to a partner's callback URL, whose W3C
//! `traceparent` (+ `tracestate`) goes with that call. A caller's `traceparent` is continued
//! only from `tracing.trusted_traceparent`; from anyone else it is ignored and a new trace
//! starts. Spans are batched on the SDK's own thread and exported as OTLP/HTTP protobuf
//! (`opentelemetry-otlp`) through a hyper client on the gateway's runtime (`export.rs`).
//!
//! Attributes name the face, request id, partner, operation, outcome, refusing stage, HTTP
//! status and peer address, never a key, password, token, certificate or message body. With
//! tracing off the server holds `None` and the request path does nothing more than test it.
//! Uses the configuration, `allowlist::contains`, `stats::StageTimes` and the OpenTelemetry
//! crates; nothing on the request path imports it but the server, the pipeline and the relay.

mod export;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanKind, SpanRef, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::TracingConfig;
use crate::stats::{Stage, StageTimes};

/// How long one export may take (the request and the receiver's answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the exit waits for the last spans to be sent.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Tracing could not be set up (the gateway does not start).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Not started inside the tokio runtime the exporter sends from.
    #[error("tracing: no tokio runtime to export from")]
    Runtime,
    /// The OTLP exporter refused its settings.
    #[error("tracing.otlp_endpoint: {0}")]
    Exporter(String),
}

/// The tracer of one gateway process.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    trusted: Vec<ipnet::IpNet>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// The URL spans are POSTed to: the endpoint as given when it names `/v1/traces`, else the
/// OTLP/HTTP traces path under it.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

impl Telemetry {
    /// The tracer for `config`, or `None` when tracing is off. Call inside the runtime.
    pub fn start(config: &TracingConfig) -> Result<Option<Arc<Telemetry>>, TelemetryError> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::Runtime)?;
        let client = export::HyperClient::new(handle, EXPORT_TIMEOUT)
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new(
                "service.version",
                crate::stats::process::VERSION,
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("partnergate");
        Ok(Some(Arc::new(Telemetry {
            provider,
            tracer,
            trusted: config.trusted_traceparent.clone(),
        })))
    }

    /// Opens the server span of a request that arrived at `started` from `peer` on `face`
    /// (`partner`, `callback`): a child of the caller's `traceparent` when `peer` is trusted
    /// for it, else the root of a new trace.
    pub fn request(
        &self,
        face: &'static str,
        peer: IpAddr,
        headers: &http::HeaderMap,
        started: Instant,
    ) -> RequestTrace {
        let peer = crate::allowlist::canonical(peer);
        let parent = if crate::allowlist::contains(&self.trusted, peer) {
            TraceContextPropagator::new().extract(&HeaderExtractor(headers))
        } else {
            Context::new()
        };
        let wall = SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or_else(SystemTime::now);
        let span = self
            .tracer
            .span_builder(face)
            .with_kind(SpanKind::Server)
            .with_start_time(wall)
            .with_attributes([
                KeyValue::new("partnergate.face", face),
                KeyValue::new("client.address", peer.to_string()),
            ])
            .start_with_context(&self.tracer, &parent);
        RequestTrace {
            tracer: self.tracer.clone(),
            cx: parent.with_span(span),
            face,
            anchor: started,
            wall,
        }
    }

    /// Sends what is still batched (at most [`SHUTDOWN_GRACE`]) and stops the exporter.
    pub async fn shutdown(self: Arc<Self>) {
        let task = tokio::task::spawn_blocking(move || self.provider.shutdown());
        match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "tracing: last spans not exported"),
            _ => tracing::warn!("tracing: the last export did not finish before exit"),
        }
    }
}

/// The facts of an answered request its server span carries.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The gateway's request id.
    pub request_id: &'a str,
    /// The partner, when known.
    pub partner: Option<&'a str>,
    /// The operation, when the body named one.
    pub operation: Option<&'a str>,
    /// `ok` or the refusal / error label (the metrics' outcome).
    pub outcome: &'a str,
    /// The stage whose rule refused the request, if one did.
    pub rule: Option<&'a str>,
    /// The HTTP status answered.
    pub status: u16,
}

/// One request's open server span.
pub struct RequestTrace {
    tracer: SdkTracer,
    /// The caller's context with the server span in it.
    cx: Context,
    face: &'static str,
    anchor: Instant,
    wall: SystemTime,
}

impl RequestTrace {
    fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.anchor)
    }

    /// Opens the client span of an outgoing call (`name`: `upstream`, `callback`) to `host`,
    /// with the headers that carry it (`traceparent`, `tracestate`).
    pub fn client(&self, name: &'static str, host: Option<&str>) -> ClientTrace {
        let mut attributes = vec![KeyValue::new("http.request.method", "POST")];
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", host.to_string()));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        let cx = self.cx.with_span(span);
        let mut headers = http::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        // The propagator writes an empty `tracestate` for a trace without one: not sent.
        if headers.get("tracestate").is_some_and(|v| v.is_empty()) {
            headers.remove("tracestate");
        }
        ClientTrace { cx, headers }
    }

    /// Closes the server span at `end` with `facts`, after the stage spans: `stages` laid end
    /// to end from `stages_from` (the first stage's start), stages not reached left out.
    pub fn finish(
        self,
        facts: &Facts<'_>,
        stages: &StageTimes,
        stages_from: Option<Instant>,
        end: Instant,
    ) {
        // An unsampled trace records nothing: no stage spans to lay out.
        let recording = self.cx.span().is_recording();
        if let Some(mut at) = stages_from.filter(|_| recording) {
            for stage in Stage::ALL {
                let d = stages.0[stage as usize];
                if d.is_zero() {
                    continue;
                }
                let mut span = self
                    .tracer
                    .span_builder(stage.label())
                    .with_kind(SpanKind::Internal)
                    .with_start_time(self.wall(at))
                    .start_with_context(&self.tracer, &self.cx);
                at += d;
                span.end_with_timestamp(self.wall(at));
            }
        }
        let span = self.cx.span();
        let name = match facts.operation {
            Some(op) => format!("{} {op}", self.face),
            None => self.face.to_string(),
        };
        span.update_name(name);
        set_facts(&span, facts);
        span.end_with_timestamp(self.wall(end));
    }
}

fn set_facts(span: &SpanRef<'_>, facts: &Facts<'_>) {
    span.set_attribute(KeyValue::new(
        "partnergate.request_id",
        facts.request_id.to_string(),
    ));
    if let Some(p) = facts.partner {
        span.set_attribute(KeyValue::new("partnergate.partner", p.to_string()));
    }
    if let Some(op) = facts.operation {
        span.set_attribute(KeyValue::new("partnergate.operation", op.to_string()));
    }
    span.set_attribute(KeyValue::new(
        "partnergate.outcome",
        facts.outcome.to_string(),
    ));
    if let Some(rule) = facts.rule {
        span.set_attribute(KeyValue::new("partnergate.rule", rule.to_string()));
    }
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(facts.status),
    ));
    if facts.outcome != "ok" {
        span.set_status(Status::error(facts.outcome.to_string()));
    }
}

/// An outgoing call's open client span.
pub struct ClientTrace {
    cx: Context,
    /// `traceparent` (and `tracestate`) for the outgoing request.
    pub headers: http::HeaderMap,
}

impl ClientTrace {
    /// Closes the span: `outcome` is `ok`, `fault` (the other side answered with a SOAP fault)
    /// or the error's label.
    pub fn end(self, outcome: &'static str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("partnergate.outcome", outcome));
        if outcome != "ok" && outcome != "fault" {
            span.set_status(Status::error(outcome));
        }
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces/"),
            "http://c:4318/v1/traces"
        );
    }
}
