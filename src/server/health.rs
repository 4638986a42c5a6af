//! `GET /readyz` and `GET /metrics` of the partner listener.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

use super::respond::text;
use super::{Server, READY_STALENESS};
use crate::store::PartnerStatus;

impl Server {
    /// Ready once the database has confirmed the snapshot recently (within [`READY_STALENESS`]).
    pub(super) fn ready(&self) -> Response<Full<Bytes>> {
        let cell = &self.gateway.snapshot;
        let staleness = cell.staleness(std::time::SystemTime::now());
        let snapshot = cell.load();
        match staleness {
            Some(age) if age <= READY_STALENESS => text(
                StatusCode::OK,
                &format!(
                    "ready: snapshot revision {} ({} partners)\n",
                    snapshot.revision,
                    snapshot.partners.len()
                ),
            ),
            Some(age) => {
                let health = cell.health();
                let error = health
                    .last_error
                    .as_deref()
                    .unwrap_or("no recent confirmation");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "not ready: database not confirmed for {}s: {error}\n",
                        age.as_secs()
                    ),
                )
            }
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: snapshot not loaded yet\n",
            ),
        }
    }

    /// `GET /metrics` (Prometheus text), for the peers in `metrics.allow` only.
    pub(super) fn metrics(&self, peer: std::net::SocketAddr) -> Response<Full<Bytes>> {
        if !crate::allowlist::contains(&self.metrics_allow, peer.ip()) {
            return text(
                StatusCode::FORBIDDEN,
                "metrics are not available to this address\n",
            );
        }
        let cell = &self.gateway.snapshot;
        let snapshot = cell.load();
        let age = cell
            .staleness(std::time::SystemTime::now())
            .map_or(-1.0, |d| d.as_secs_f64());
        let gauges = [
            (
                "partnergate_snapshot_age_seconds",
                "Seconds since the database last confirmed the partner snapshot (-1: never).",
                age,
            ),
            (
                "partnergate_snapshot_revision",
                "Revision of the partner snapshot in force.",
                snapshot.revision as f64,
            ),
            (
                "partnergate_partners",
                "Partners in the snapshot.",
                snapshot.partners.len() as f64,
            ),
        ];
        let mut body = self.gateway.stats.render(&gauges);
        // Per-partner latency for the active partners in force only (a bounded label set).
        self.gateway.stats.render_partner_latency(&mut body, |id| {
            snapshot
                .partners
                .get(id)
                .is_some_and(|p| p.status == PartnerStatus::Active)
        });
        crate::stats::process::render(&mut body);
        cell.render_refresh_metrics(&mut body);
        self.gateway.throttle.render_cluster_metrics(&mut body);
        self.admission.render(&mut body);
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }
}
