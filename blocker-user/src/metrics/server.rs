//! The HTTP endpoint: `GET /metrics`, a link page at `/`, 404 elsewhere.
//! Served by [`crate::http`]; encoding runs in `spawn_blocking`, since the
//! snapshot takes the agent's locks.

use std::{
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use hyper::{Method, Request, StatusCode, body::Incoming, header};
use tokio_util::sync::CancellationToken;

use super::{Format, LatencyRecorder, MetricsConfig, MetricsSource, render};
use crate::http::{Bound, Reply, plain, reply};

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
pub struct MetricsServer(Bound);

struct Shared {
    source: Arc<dyn MetricsSource>,
    latency: LatencyRecorder,
    started: SystemTime,
}

impl MetricsServer {
    /// Binds the configured address (needs no runtime).
    pub fn bind(config: &MetricsConfig) -> Result<MetricsServer, MetricsError> {
        Bound::bind(config.listen)
            .map(MetricsServer)
            .map_err(|source| MetricsError::Bind { addr: config.listen, source })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Serves until `cancel` fires; open connections are then closed.
    pub async fn run(
        self,
        source: Arc<dyn MetricsSource>,
        latency: LatencyRecorder,
        cancel: CancellationToken,
    ) -> Result<(), MetricsError> {
        let shared =
            Arc::new(Shared { source, latency, started: process_start_time().unwrap_or_else(SystemTime::now) });
        let handle = move |_peer, req| respond(shared.clone(), req);
        self.0.serve("metrics endpoint", handle, cancel).await.map_err(MetricsError::Listener)
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

async fn respond(shared: Arc<Shared>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path();
    let known = matches!(path, "/" | "/metrics");
    if !known {
        return plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/" {
        return reply(StatusCode::OK, "text/html; charset=utf-8", INDEX.as_bytes());
    }
    let format = Format::from_accept(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body =
        tokio::task::spawn_blocking(move || render(&shared.source, &shared.latency, shared.started, format)).await;
    match body {
        Ok(text) => reply(StatusCode::OK, format.content_type(), text),
        Err(e) => {
            tracing::warn!(error = %e, "collecting metrics failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "collecting metrics failed\n")
        }
    }
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
