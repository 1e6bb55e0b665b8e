//! `[[provider]]`: who delivers push, call and SMS; `[notify]`: who hears
//! about fraud reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::server::Server;
use super::values::{EnvLookup, RawSecret, bounded, parse_duration, required_name, resolve_secret};
use crate::mfa::Method;
use crate::secret::Secret;

/// How a provider delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// POST signed JSON to `url`; the result comes back to the callback URL.
    Webhook { url: String },
    /// Write the message or code to the server log (trials only).
    Console,
}

/// A delivery provider for push, call and SMS.
#[derive(Clone, Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub methods: Vec<Method>,
    /// HMAC-SHA256 key for requests and callbacks; a console provider
    /// without one cannot be answered by callback.
    pub key: Option<Secret>,
    pub timeout: Duration,
    pub retries: u8,
}

/// Fraud-report email.
#[derive(Clone, Debug)]
pub struct Notify {
    /// SMTP relay, `host:port`.
    pub smtp: String,
    /// `none` (a local relay), `starttls` or `tls`.
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    url: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    #[serde(default = "d_provider_timeout")]
    timeout: String,
    #[serde(default = "d_retries")]
    retries: u64,
}

fn d_retries() -> u64 {
    2
}

fn d_provider_timeout() -> String {
    "5s".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    smtp: String,
    #[serde(default = "d_smtp_tls")]
    tls: String,
    from: String,
    to: Vec<String>,
}

fn d_smtp_tls() -> String {
    "none".into()
}

/// The `[[provider]]` tables; `[server]` says whether callbacks can
/// arrive.
pub(super) fn validate(
    raw: Vec<RawProvider>,
    server: &Server,
    base: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Provider>, ConfigError> {
    let mut out: Vec<Provider> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("provider[{i}]");
        let name = required_name(p.name, &key)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another provider"),
            ));
        }
        let kind = match p.kind.as_deref() {
            Some("webhook") => {
                let url = p.url.ok_or_else(|| {
                    invalid(
                        format!("{key}.url"),
                        "missing: a webhook provider needs a URL",
                    )
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(
                        format!("{key}.url"),
                        format!("\"{url}\" is not an http:// or https:// URL"),
                    ));
                }
                if url.starts_with("http://") {
                    warnings.push(format!("{key} (\"{name}\"): the webhook URL is plain http; phone numbers and SMS codes cross the network unencrypted"));
                }
                ProviderKind::Webhook { url }
            }
            Some("console") => {
                warnings.push(format!("{key} (\"{name}\"): a console provider writes messages and SMS codes to the server log. It is for trials, NOT for production"));
                ProviderKind::Console
            }
            Some(other) => {
                return Err(invalid(
                    format!("{key}.type"),
                    format!("\"{other}\" is not one of \"webhook\", \"console\""),
                ));
            }
            None => {
                return Err(invalid(
                    format!("{key}.type"),
                    "missing: \"webhook\" or \"console\"",
                ));
            }
        };
        if p.methods.is_empty() {
            return Err(invalid(
                format!("{key}.methods"),
                "missing: list what it delivers, e.g. [\"push\", \"call\", \"sms\"]",
            ));
        }
        let mut methods = Vec::new();
        for (j, m) in p.methods.iter().enumerate() {
            match Method::parse(m) {
                Some(Method::Totp) | None => {
                    return Err(invalid(
                        format!("{key}.methods[{j}]"),
                        format!("\"{m}\" is not one of \"push\", \"call\", \"sms\""),
                    ));
                }
                Some(m) => methods.push(m),
            }
        }
        let has_key = p.key.is_some() || p.key_file.is_some() || p.key_env.is_some();
        let secret = if has_key {
            let k = resolve_secret(
                RawSecret {
                    field: "key",
                    secret: p.key,
                    secret_file: p.key_file,
                    secret_env: p.key_env,
                },
                &key,
                base,
                env,
            )?;
            if k.len() < 16 {
                return Err(invalid(
                    format!("{key}.key"),
                    "is shorter than 16 characters; use a long random key",
                ));
            }
            Some(k)
        } else if matches!(kind, ProviderKind::Webhook { .. }) {
            return Err(invalid(
                format!("{key}.key"),
                "missing: a webhook provider signs with a key (or key_file, key_env)",
            ));
        } else {
            None
        };
        out.push(Provider {
            name,
            kind,
            methods,
            key: secret,
            timeout: parse_duration(
                &p.timeout,
                &format!("{key}.timeout"),
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            retries: bounded(p.retries, &format!("{key}.retries"), 0, 10)? as u8,
        });
    }
    if !out.is_empty() && server.http_listen.is_none() {
        warnings.push("[[provider]] is set but server.http_listen is not: no callback can arrive, so push and call always time out".to_owned());
    }
    if out
        .iter()
        .any(|p| matches!(p.kind, ProviderKind::Webhook { .. }))
        && server.public_url.is_none()
    {
        return Err(invalid(
            "server.public_url",
            "missing: webhook providers need it to build callback URLs, e.g. \"https://mfa.example.org:8443\"",
        ));
    }
    Ok(out)
}

/// `[notify]`.
pub(super) fn validate_notify(n: RawNotify) -> Result<Notify, ConfigError> {
    let tls = smtp_relay(&n.smtp, &n.tls, "notify")?;
    email(&n.from, "notify.from")?;
    if n.to.is_empty() {
        return Err(invalid("notify.to", "missing: at least one address"));
    }
    for (i, t) in n.to.iter().enumerate() {
        email(t, &format!("notify.to[{i}]"))?;
    }
    Ok(Notify {
        smtp: n.smtp,
        tls,
        from: n.from,
        to: n.to,
    })
}

/// An SMTP relay's `smtp` (`host:port`, an IPv6 host in brackets) and
/// `tls` under `section` (`[notify]`, `[enrollment]`): how it is reached.
pub(super) fn smtp_relay(smtp: &str, tls: &str, section: &str) -> Result<SmtpTls, ConfigError> {
    let port_ok = smtp
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(invalid(
            format!("{section}.smtp"),
            format!("\"{smtp}\" is not host:port, e.g. \"127.0.0.1:25\""),
        ));
    }
    match tls {
        "none" => Ok(SmtpTls::None),
        "starttls" => Ok(SmtpTls::StartTls),
        "tls" => Ok(SmtpTls::Tls),
        other => Err(invalid(
            format!("{section}.tls"),
            format!("\"{other}\" is not one of \"none\", \"starttls\", \"tls\""),
        )),
    }
}

/// An email address, as far as a configuration can tell: lettre judges it
/// when a message is built.
pub(super) fn email(address: &str, key: &str) -> Result<(), ConfigError> {
    if address.contains('@') && !address.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("\"{address}\" is not an email address"),
        ))
    }
}
