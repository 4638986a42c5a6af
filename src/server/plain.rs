//! The accept loop of the two internal listeners — the admin API (with the dashboard) and the
//! standalone partner API layer: HTTP/1.1 (over TLS for the admin listener with `admin.tls`)
//! on a listener of their own, at most a fixed
//! number of connections at once (more wait in the backlog), hyper's header read timeout, a
//! lifetime per connection as a backstop, and on shutdown a graceful close of the open ones
//! within a grace period. (The partner listener has its own loop in `mod.rs`: TLS, the accept
//! gate, per-source limits and idle reclaim.) Uses hyper and tokio only.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How one internal listener serves its connections.
#[derive(Clone, Copy, Debug)]
pub struct Plain {
    /// For the log lines (`admin API`, `partner API layer`).
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// hyper's header read timeout.
    pub header_timeout: Duration,
    /// The longest a connection may live (a client that stalls where no read timeout applies).
    pub lifetime: Duration,
    /// Keep connections open between requests.
    pub keep_alive: bool,
    /// hyper's read buffer (bounds the request head).
    pub max_buf_size: usize,
    /// How long open connections may finish after shutdown was asked for.
    pub grace: Duration,
}

impl Plain {
    /// Serves `listener` with `handle` until `shutdown` turns true (or its sender is dropped),
    /// then waits up to the grace period for the connections still open.
    pub async fn serve<H, F>(
        self,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
        handle: H,
    ) where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        self.serve_tls(listener, shutdown, None, handle).await;
    }

    /// [`Plain::serve`], over TLS when `tls` is given (the handshake within the header
    /// timeout).
    pub async fn serve_tls<H, F>(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handle: H,
    ) where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let handle = Arc::new(handle);
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, listener = self.name, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let handle = Arc::clone(&handle);
            let shutdown = shutdown.clone();
            let tls = tls.clone();
            tasks.spawn(async move {
                match tls {
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(self.header_timeout, acceptor.accept(stream))
                                .await;
                        match handshake {
                            Ok(Ok(stream)) => {
                                self.connection(stream, peer, shutdown, handle).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, listener = self.name, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(%peer, listener = self.name, "TLS handshake timed out");
                            }
                        }
                    }
                    None => self.connection(stream, peer, shutdown, handle).await,
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        drop(listener);
        let _ = tokio::time::timeout(self.grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }

    async fn connection<S, H, F>(
        self,
        stream: S,
        peer: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
        handle: Arc<H>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let service = service_fn(move |req| {
            let answer = handle(req, peer);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(self.keep_alive)
            .max_buf_size(self.max_buf_size);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            result = tokio::time::timeout(self.lifetime, conn.as_mut()) => match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, listener = self.name, "connection error"),
                Err(_) => tracing::debug!(%peer, listener = self.name, "connection timed out"),
            },
            _ = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.grace, conn).await;
            }
        }
    }
}
