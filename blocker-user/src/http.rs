//! The small HTTP/1.1 server loop shared by the metrics endpoint and the
//! ban-sharing receiver (hyper). Each connection is its own task, at most
//! [`MAX_CONNECTIONS`] at once; a client that does not send its request
//! headers within [`HEADER_TIMEOUT`] is dropped.

use std::{convert::Infallible, future::Future, io, net::SocketAddr, time::Duration};

use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub type Reply = Response<Full<Bytes>>;

/// A listener bound at start (so a port in use fails the start), served later.
#[derive(Debug)]
pub struct Bound {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
}

impl Bound {
    /// Binds `addr` (needs no runtime).
    pub fn bind(addr: SocketAddr) -> io::Result<Bound> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(Bound { listener, addr })
    }

    /// Serves `handle` (given the peer's address) on every request until
    /// `cancel` fires; open connections are then closed. `what` names the
    /// endpoint in logs.
    pub async fn serve<H, F>(self, what: &'static str, handle: H, cancel: CancellationToken) -> io::Result<()>
    where
        H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let permits = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        tracing::info!(addr = %self.addr, "{what} listening");
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "{what}: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            while conns.try_join_next().is_some() {}
            let handle = handle.clone();
            conns.spawn(async move {
                let service = service_fn(move |req| {
                    let reply = handle(peer, req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "{what}: connection ended with an error");
                }
                drop(permit);
            });
        }
        conns.shutdown().await;
        Ok(())
    }
}

/// A reply with a body and its content type.
pub fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r
}

/// A plain-text reply.
pub fn plain(status: StatusCode, text: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", Bytes::from_static(text.as_bytes()))
}
