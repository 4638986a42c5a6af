//! A keep-alive SOAP caller of one node (reopening the connection when the node closes it),
//! shared by the test files that call real `partnergate serve` processes many times.

#![allow(
    dead_code,
    reason = "shared by several test files; each uses a part of it"
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::common::{post_bytes, request_fixture, soap_headers, Conn, Partner, RawResponse};
use partnergate::envelope::SoapVersion::Soap11;
use partnergate::generated::partner::Operation;

/// A keep-alive connection to one node.
pub struct Caller {
    /// The node.
    pub addr: SocketAddr,
    conn: Option<Conn<TcpStream>>,
}

impl Caller {
    /// Not connected yet: the first call connects.
    pub fn new(addr: SocketAddr) -> Caller {
        Caller { addr, conn: None }
    }

    /// Calls GetAccount (SOAP 1.1) with `partner`'s key and returns the answer; a kept-alive
    /// connection the node closed is reopened once more. Errors: the node cannot be reached
    /// (three attempts), or gave no answer within 10 s.
    pub async fn call(&mut self, partner: &Partner) -> std::io::Result<RawResponse> {
        let body = request_fixture(Operation::GetAccount, Soap11, partner);
        let (ct, headers) = soap_headers(Soap11, Some(Operation::GetAccount.soap_action()));
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = post_bytes(&self.addr.to_string(), &ct, &headers, &body);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let conn = match &mut self.conn {
                Some(c) => c,
                None => {
                    let stream = TcpStream::connect(self.addr).await?;
                    self.conn.insert(Conn::new(stream))
                }
            };
            let read = match conn.send(&request).await {
                Ok(()) => tokio::time::timeout(Duration::from_secs(10), conn.read_response())
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no answer within 10 s",
                        ))
                    }),
                Err(e) => Err(e),
            };
            match read {
                Ok(r) => {
                    if r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    {
                        self.conn = None;
                    }
                    return Ok(r);
                }
                // The node closed the kept-alive connection: once more on a new one.
                Err(e) => {
                    self.conn = None;
                    if attempts >= 3 || e.kind() == std::io::ErrorKind::TimedOut {
                        return Err(e);
                    }
                }
            }
        }
    }
}
