//! Webhooks: an HTTP(S) POST per message (reqwest, rustls). Bodies for
//! generic receivers (the event as JSON) and Slack/Discord/Teams-style
//! receivers, or the user's template.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{
    Payload,
    config::{WebhookBody, WebhookConfig, WebhookFormat},
    deliver::DeliveryError,
    email::chain,
    template::{Context, Template, default_subject},
};

/// Discord refuses longer `content`.
const DISCORD_MAX: usize = 2000;

pub(crate) struct WebhookSender {
    cfg: WebhookConfig,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(cfg: &WebhookConfig, timeout: Duration) -> Result<WebhookSender, String> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("blocker/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("CA file: {e}"))? {
                b = b.add_root_certificate(c);
            }
        }
        if cfg.tls_insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let client = b.build().map_err(|e| format!("HTTP client: {}", chain(&e)))?;
        Ok(WebhookSender { cfg: cfg.clone(), client })
    }

    /// The request body for `payload`.
    pub fn body(&self, payload: &Payload, whois: Option<&str>) -> Vec<u8> {
        let text = |s: String| -> Vec<u8> {
            let v = match self.cfg.format {
                WebhookFormat::Generic => unreachable!("generic bodies are built below"),
                WebhookFormat::Slack | WebhookFormat::Teams => json!({ "text": s }),
                WebhookFormat::Discord => json!({ "content": truncate(&s, DISCORD_MAX) }),
            };
            v.to_string().into_bytes()
        };
        match payload {
            Payload::Event { event } => {
                let ctx = Context { event, whois };
                match &self.cfg.body {
                    Some(WebhookBody::Json(t)) => t.render(&ctx).to_string().into_bytes(),
                    Some(WebhookBody::Text(t)) => t.render(&ctx).into_bytes(),
                    None if self.cfg.format == WebhookFormat::Generic => ctx.generic_json().to_string().into_bytes(),
                    None => {
                        let line = match &self.cfg.text {
                            Some(t) => t.render(&ctx),
                            None => Template::parse(default_subject(event.kind)).expect("built-in").render(&ctx),
                        };
                        text(line)
                    }
                }
            }
            Payload::Digest { digest } => match self.cfg.format {
                WebhookFormat::Generic => {
                    let mut v = serde_json::to_value(digest).unwrap_or(Json::Null);
                    v["event"] = json!("digest");
                    v["text"] = json!(digest.text());
                    v.to_string().into_bytes()
                }
                _ => text(format!("{}\n{}", digest.subject(), digest.text())),
            },
            Payload::Report { report } => match self.cfg.format {
                WebhookFormat::Generic => {
                    let mut v = serde_json::to_value(report).unwrap_or(Json::Null);
                    v["event"] = json!("report");
                    v["text"] = json!(report.text());
                    v.to_string().into_bytes()
                }
                _ => text(format!("{}\n{}", report.subject(), report.text())),
            },
        }
    }

    pub async fn deliver(&self, payload: &Payload, whois: Option<&str>) -> Result<(), DeliveryError> {
        let body = self.body(payload, whois);
        let mut req = self.client.post(&self.cfg.url).header(reqwest::header::CONTENT_TYPE, &self.cfg.content_type);
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return Err(DeliveryError::Transient(format!("POST {}: {}", redact(&self.cfg.url), chain(&e)))),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let detail: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
        let msg = format!("POST {}: {status} {}", redact(&self.cfg.url), detail.trim());
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(DeliveryError::Transient(msg))
        } else {
            Err(DeliveryError::Permanent(msg))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Webhook URLs often carry their secret in the path: log the origin only.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}/…", u.origin().ascii_serialization()),
        Err(_) => "<webhook>".into(),
    }
}
