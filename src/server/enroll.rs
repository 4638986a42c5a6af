//! `POST /soap/enrollment/v1`: the anonymous enrollment endpoint on the partner listener
//! (`crate::enroll`). A caller that can never enroll (enrollment disabled, outside
//! `enrollment.allow`) is refused before its body is read, and its connection closed; any other
//! call is read within the listener's body limits and answered with the enrollment's response or
//! fault, with one access line (operation and outcome: never the pickup secret or a key).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::respond::{new_request_id, text};
use super::Server;
use crate::envelope::SoapVersion;
use crate::pipeline;

impl Server {
    /// `POST /soap/enrollment/v1`.
    pub(super) async fn enrollment(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = new_request_id();
        let (parts, body) = req.into_parts();
        let version_hint =
            pipeline::content_type_version(&parts.headers).map_or(SoapVersion::Soap11, |(v, _)| v);
        let Some(endpoint) = self.gateway.enrollment.clone() else {
            return text(StatusCode::NOT_FOUND, "enrollment is not served here\n");
        };
        let (answer, unread) = match endpoint.refuse_caller(peer.ip(), &parts.headers, &request_id)
        {
            Some(refused) => (refused, true),
            None => {
                let body = match self
                    .read_body(&parts, body, version_hint, &request_id, peer, started)
                    .await
                {
                    Ok(b) => b,
                    Err(response) => return response,
                };
                let answer = endpoint
                    .handle(peer.ip(), &parts.headers, &body, &request_id)
                    .await;
                (answer, false)
            }
        };
        self.answer(answer, &request_id, peer, unread, started)
    }
}
