//! The HTTP endpoint: `GET /metrics`, a link page at `/`, 404 elsewhere.
//!
//! HTTP/1.1 only (hyper). Each connection is its own task, at most
//! [`MAX_CONNECTIONS`] at once; a client that does not send its request
//! headers within [`HEADER_TIMEOUT`] is dropped. Encoding runs in
//! `spawn_blocking`, since the snapshot takes the agent's locks.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{Format, LatencyRecorder, MetricsConfig, MetricsSource, render};

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("metrics listener: {0}")]
    Listener(#[source] io::Error),
}

/// A bound, not yet serving, metrics endpoint. Binding first lets the
/// agent fail at start (port taken) before it reports ready.
#[derive(Debug)]
pub struct MetricsServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

struct Shared {
    source: Arc<dyn MetricsSource>,
    latency: LatencyRecorder,
    started: SystemTime,
}

impl MetricsServer {
    /// Binds the configured address (needs no runtime).
    pub fn bind(config: &MetricsConfig) -> Result<MetricsServer, MetricsError> {
        let bind_err = |source| MetricsError::Bind { addr: config.listen, source };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(MetricsServer { listener, addr })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `cancel` fires; open connections are then closed.
    pub async fn run(
        self,
        source: Arc<dyn MetricsSource>,
        latency: LatencyRecorder,
        cancel: CancellationToken,
    ) -> Result<(), MetricsError> {
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(MetricsError::Listener)?;
        let shared = Arc::new(Shared { source, latency, started: process_start_time().unwrap_or_else(SystemTime::now) });
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        tracing::info!(addr = %self.addr, "metrics endpoint listening");
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let (stream, _peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            while conns.try_join_next().is_some() {}
            let shared = shared.clone();
            conns.spawn(async move {
                let service = service_fn(move |req| respond(shared.clone(), req));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
                drop(permit);
            });
        }
        conns.shutdown().await;
        Ok(())
    }
}

/// Binds and serves until `cancel` fires.
pub async fn serve(
    config: &MetricsConfig,
    source: Arc<dyn MetricsSource>,
    latency: LatencyRecorder,
    cancel: CancellationToken,
) -> Result<(), MetricsError> {
    MetricsServer::bind(config)?.run(source, latency, cancel).await
}

const INDEX: &str = "<html><head><title>blocker</title></head><body><h1>blocker</h1>\
<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

async fn respond(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let known = matches!(path, "/" | "/metrics");
    if !known {
        return Ok(plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    if path == "/" {
        let mut r = Response::new(Full::new(Bytes::from_static(INDEX.as_bytes())));
        r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
        return Ok(r);
    }
    let format = Format::from_accept(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = tokio::task::spawn_blocking(move || render(&shared.source, &shared.latency, shared.started, format)).await;
    Ok(match body {
        Ok(text) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(format.content_type()));
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "collecting metrics failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "collecting metrics failed\n")
        }
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// When this process started: `/proc/self/stat` field 22 (clock ticks
/// after boot) plus the boot time in `/proc/stat`.
fn process_start_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = after.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    let since_boot = Duration::from_millis(ticks * 1000 / hz);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_time_is_recent_and_not_in_the_future() {
        let t = process_start_time().expect("readable on Linux");
        let now = SystemTime::now();
        // btime has 1 s resolution.
        assert!(t <= now + Duration::from_secs(1), "{t:?} after {now:?}");
        assert!(now.duration_since(t).unwrap_or_default() < Duration::from_secs(3600), "{t:?}");
    }
}
