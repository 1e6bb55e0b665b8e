//! What `mfa-proxy check` prints: never a secret.

use std::fmt;

use super::{Config, Primary, ProviderKind};

/// See [`Config::summary`].
#[derive(Debug)]
pub struct Summary<'a>(pub(super) &'a Config);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(f, "server \"{}\"", c.server.name)?;
        writeln!(
            f,
            "primary: {}, second factor: {}",
            match c.primary {
                Primary::Upstream => "upstream",
                Primary::Local => "local",
            },
            if c.mfa.enabled { "on" } else { "off" }
        )?;
        for a in &c.server.auth_listen {
            writeln!(f, "  listen auth {a}")?;
        }
        for a in &c.server.acct_listen {
            writeln!(f, "  listen acct {a}")?;
        }
        writeln!(
            f,
            "proxy: {:?} selection, when all upstreams are down: {:?}, duplicate window {}",
            c.proxy.selection,
            c.proxy.when_all_down,
            humantime::format_duration(c.proxy.dedup_window)
        )?;
        writeln!(f, "clients ({}):", c.clients.len())?;
        for cl in &c.clients {
            writeln!(
                f,
                "  {:<16} {:<20} message-authenticator {}",
                cl.name,
                cl.network.to_string(),
                if cl.require_message_authenticator {
                    "required"
                } else {
                    "optional"
                }
            )?;
        }
        writeln!(f, "upstreams ({}):", c.upstreams.len())?;
        for u in &c.upstreams {
            let acct = u.acct_address.map_or("-".to_owned(), |a| a.to_string());
            writeln!(
                f,
                "  {:<16} auth {:<22} acct {:<22} timeout {} retries {} health {:?}",
                u.name,
                u.address.to_string(),
                acct,
                humantime::format_duration(u.timeout),
                u.retries,
                u.health_check
            )?;
        }
        if let Some(h) = c.server.http_listen {
            writeln!(
                f,
                "{}: {h} (callbacks at {}/v1/verifications/ID)",
                if c.server.http_tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                c.server.public_url.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(f, "providers ({}):", c.providers.len())?;
        for p in &c.providers {
            let kind = match &p.kind {
                ProviderKind::Webhook { url } => format!("webhook {url}"),
                ProviderKind::Console => "console".to_owned(),
            };
            let methods: Vec<&str> = p.methods.iter().map(|m| m.as_str()).collect();
            writeln!(f, "  {:<16} {kind} [{}]", p.name, methods.join(", "))?;
        }
        if let Some(n) = &c.notify {
            writeln!(f, "fraud email: {} via {}", n.to.join(", "), n.smtp)?;
        }
        for w in &c.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
