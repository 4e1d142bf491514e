//! `POST /v1/ban`: a ban from another agent, in the body its generic
//! webhook sends (`{"event": "ban", "addr": "192.0.2.7/32", "bantime": 600,
//! "hostname": "web1", …}`), authenticated by `Authorization: Bearer TOKEN`.
//!
//! Replies: 200 with `{"result": "banned" | "already banned" |
//! "allowlisted" | "ignored"}`; 400 bad body; 401 bad token; 403 peer not
//! in `accept_from`; 500 the ban could not be applied (the sender retries).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Limited};
use hyper::{Method, Request, StatusCode, body::Incoming, header};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tokio_util::sync::CancellationToken;

use super::ShareConfig;
use crate::{
    enforce::Target,
    http::{Bound, Reply, plain, reply},
};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What a received ban did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Banned,
    AlreadyBanned,
    Allowlisted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Banned => "banned",
            Outcome::AlreadyBanned => "already banned",
            Outcome::Allowlisted => "allowlisted",
        }
    }
}

/// Where received bans go (the agent; a fake in tests).
pub trait SharedBans: Send + Sync + 'static {
    /// The `[share]` settings in force (read per request, so a reload applies).
    fn share_config(&self) -> Option<ShareConfig>;
    /// Bans `target` for `bantime` (already capped) under the share jail.
    fn ban_shared(&self, target: Target, bantime: Duration, origin: &str) -> Result<Outcome, String>;
}

/// The generic webhook body; only what a ban needs.
#[derive(Deserialize)]
struct Body {
    event: String,
    addr: Option<String>,
    ip: Option<String>,
    /// Seconds; null = permanent (capped by `max_bantime`).
    bantime: Option<u64>,
    #[serde(default)]
    hostname: String,
}

/// Serves the receiver until `cancel` fires.
pub async fn serve(bound: Bound, sink: Arc<dyn SharedBans>, cancel: CancellationToken) -> std::io::Result<()> {
    let handle = move |peer: SocketAddr, req| respond(sink.clone(), peer, req);
    bound.serve("ban sharing receiver", handle, cancel).await
}

async fn respond(sink: Arc<dyn SharedBans>, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let Some(cfg) = sink.share_config() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "ban sharing is off\n");
    };
    if req.uri().path() != "/v1/ban" {
        return plain(StatusCode::NOT_FOUND, "not found; bans are posted to /v1/ban\n");
    }
    if req.method() != Method::POST {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only POST\n");
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return r;
    }
    let peer_ip = peer.ip().to_canonical();
    if !cfg.accept_from.is_empty() && !cfg.accept_from.iter().any(|n| n.contains(&peer_ip)) {
        tracing::warn!(peer = %peer_ip, "ban sharing: peer not in accept_from");
        return plain(StatusCode::FORBIDDEN, "peer not accepted\n");
    }
    if !authorized(&req, &cfg.token) {
        tracing::warn!(peer = %peer_ip, "ban sharing: bad or missing token");
        return plain(StatusCode::UNAUTHORIZED, "bad or missing bearer token\n");
    }
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "body unreadable or over 64 KiB\n"),
    };
    let body: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return reply(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", format!("invalid JSON: {e}\n")),
    };
    if body.event != "ban" {
        return result("ignored");
    }
    let Some(target) = body.addr.as_deref().or(body.ip.as_deref()).and_then(|a| a.parse::<Target>().ok()) else {
        return plain(StatusCode::BAD_REQUEST, "no valid addr (or ip) in the body\n");
    };
    let bantime = body.bantime.map_or(cfg.max_bantime, |s| Duration::from_secs(s).min(cfg.max_bantime));
    let origin = if body.hostname.is_empty() { peer_ip.to_string() } else { format!("{} ({peer_ip})", body.hostname) };
    let work = tokio::task::spawn_blocking(move || sink.ban_shared(target, bantime, &origin)).await;
    match work {
        Ok(Ok(o)) => result(o.as_str()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, addr = %target, "ban sharing: cannot apply a received ban");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the ban could not be applied\n")
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "the ban could not be applied\n"),
    }
}

fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

fn result(what: &'static str) -> Reply {
    reply(StatusCode::OK, "application/json", serde_json::json!({ "result": what }).to_string())
}
