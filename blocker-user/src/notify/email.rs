//! Email through lettre: SMTP (plain for local relays, STARTTLS, implicit
//! TLS; optional AUTH) or a sendmail binary.

use std::{collections::BTreeMap, time::Duration};

use lettre::{
    AsyncSendmailTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};

use super::{
    Payload,
    config::{EmailConfig, JailNotify, MailTransport, SmtpSecurity},
    deliver::DeliveryError,
    template::{Context, Template, default_body, default_subject},
};

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Sendmail(AsyncSendmailTransport<Tokio1Executor>),
}

pub(crate) struct EmailSender {
    cfg: EmailConfig,
    transport: Transport,
    timeout: Duration,
}

impl EmailSender {
    pub fn new(cfg: &EmailConfig, timeout: Duration) -> Result<EmailSender, String> {
        let transport = match &cfg.transport {
            MailTransport::Sendmail { path } => Transport::Sendmail(AsyncSendmailTransport::new_with_command(path)),
            MailTransport::Smtp { security, host, port, credentials, ca_pem, tls_insecure } => {
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(timeout));
                if *security != SmtpSecurity::Plain {
                    let mut p = TlsParameters::builder(host.clone());
                    if let Some(pem) = ca_pem {
                        let cert = Certificate::from_pem(pem).map_err(|e| format!("CA file: {e}"))?;
                        p = p.add_root_certificate(cert);
                    }
                    if *tls_insecure {
                        p = p.dangerous_accept_invalid_certs(true).dangerous_accept_invalid_hostnames(true);
                    }
                    let p = p.build_rustls().map_err(|e| format!("TLS settings: {e}"))?;
                    b = b.tls(if *security == SmtpSecurity::StartTls { Tls::Required(p) } else { Tls::Wrapper(p) });
                }
                if let Some((u, pw)) = credentials {
                    b = b.credentials(Credentials::new(u.clone(), pw.clone()));
                }
                Transport::Smtp(b.build())
            }
        };
        Ok(EmailSender { cfg: cfg.clone(), transport, timeout })
    }

    /// Builds the message for `payload`.
    pub fn message(
        &self,
        payload: &Payload,
        jails: &BTreeMap<String, JailNotify>,
        whois: Option<&str>,
    ) -> Result<Message, DeliveryError> {
        let (subject, body, jail) = match payload {
            Payload::Event { event } => {
                let ctx = Context { event, whois };
                let subject = match &self.cfg.subject {
                    Some(t) => t.render(&ctx),
                    None => Template::parse(default_subject(event.kind)).expect("built-in").render(&ctx),
                };
                let body = match &self.cfg.body {
                    Some(t) => t.render(&ctx),
                    None => Template::parse(&default_body(event.kind, whois.is_some())).expect("built-in").render(&ctx),
                };
                (subject, body, Some(event.jail.as_str()))
            }
            Payload::Digest { digest } => (digest.subject(), digest.text(), None),
            Payload::Report { report } => (report.subject(), report.text(), None),
        };
        let over = jail.and_then(|j| jails.get(j));
        let from = over.and_then(|o| o.from.clone()).unwrap_or_else(|| self.cfg.from.clone());
        let to: Vec<Mailbox> = over.and_then(|o| o.to.clone()).unwrap_or_else(|| self.cfg.to.clone());
        // Header values are single lines.
        let subject: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let mut b = Message::builder().from(from).subject(subject).header(ContentType::TEXT_PLAIN);
        for t in to {
            b = b.to(t);
        }
        b.body(body).map_err(|e| DeliveryError::Permanent(format!("cannot build the message: {e}")))
    }

    pub async fn deliver(
        &self,
        payload: &Payload,
        jails: &BTreeMap<String, JailNotify>,
        whois: Option<&str>,
    ) -> Result<(), DeliveryError> {
        let msg = self.message(payload, jails, whois)?;
        match &self.transport {
            Transport::Smtp(t) => match tokio::time::timeout(self.timeout * 2, t.send(msg)).await {
                Err(_) => Err(DeliveryError::Transient("SMTP timed out".into())),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if e.is_permanent() => Err(DeliveryError::Permanent(format!("SMTP: {}", chain(&e)))),
                Ok(Err(e)) => Err(DeliveryError::Transient(format!("SMTP: {}", chain(&e)))),
            },
            Transport::Sendmail(t) => match tokio::time::timeout(self.timeout, t.send(msg)).await {
                Err(_) => Err(DeliveryError::Transient(format!("sendmail did not finish within {:?}", self.timeout))),
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DeliveryError::Transient(format!("sendmail: {}", chain(&e)))),
            },
        }
    }
}

/// An error with its sources: `connection error: Connection refused`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
