//! `[[upstream]]`: the RADIUS servers that check the first factor.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::primary::Primary;
use super::server::Server;
use super::values::{EnvLookup, RawSecret, bounded, parse_duration, required_name, resolve_secret};
use crate::radius::crypto::SharedSecret;

/// How an upstream's health is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// RFC 5997 Status-Server probes.
    StatusServer,
    /// No probes (Microsoft NPS does not answer Status-Server): a dead
    /// upstream is tried again after `revive_after`.
    None,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub address: SocketAddr,
    pub acct_address: Option<SocketAddr>,
    pub secret: SharedSecret,
    pub timeout: Duration,
    pub retries: u8,
    pub require_message_authenticator: bool,
    pub health_check: HealthCheck,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    name: Option<String>,
    address: Option<String>,
    acct_address: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default = "d_timeout")]
    timeout: String,
    #[serde(default = "d_retries")]
    retries: u64,
    #[serde(default = "d_true")]
    require_message_authenticator: bool,
    #[serde(default = "d_health")]
    health_check: String,
}

fn d_true() -> bool {
    true
}

fn d_timeout() -> String {
    "3s".into()
}

fn d_retries() -> u64 {
    2
}

fn d_health() -> String {
    "status-server".into()
}

fn parse_upstream_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("\"{s}\" has port 0"));
        }
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!(
        "\"{s}\" is not IP:port, e.g. \"10.0.0.5:{default_port}\" (host names are not resolved, so a DNS failure cannot stop logins)"
    ))
}

/// The `[[upstream]]` tables; `[primary]` says whether one is needed, and
/// `[server]` whether accounting has somewhere to go.
/// Upstreams at most.
const MAX_UPSTREAMS: usize = 64;

pub(super) fn validate(
    raw: Vec<RawUpstream>,
    primary: &Primary,
    server: &Server,
    base: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Upstream>, ConfigError> {
    if raw.is_empty() && *primary == Primary::Upstream {
        return Err(invalid(
            "upstream",
            "at least one [[upstream]] is needed: the first factor goes there (or set [primary] mode = \"local\" or \"ldap\")",
        ));
    }
    // A request remembers which upstreams it tried in 64 bits.
    if raw.len() > MAX_UPSTREAMS {
        return Err(invalid(
            "upstream",
            format!(
                "{} [[upstream]] tables: at most {MAX_UPSTREAMS} are supported",
                raw.len()
            ),
        ));
    }
    let mut upstreams: Vec<Upstream> = Vec::new();
    for (i, u) in raw.into_iter().enumerate() {
        let key = format!("upstream[{i}]");
        let name = required_name(u.name, &key)?;
        if upstreams.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another upstream"),
            ));
        }
        let a = u.address.ok_or_else(|| {
            invalid(
                format!("{key}.address"),
                "missing: give IP:port, e.g. \"10.0.0.5:1812\"",
            )
        })?;
        let address =
            parse_upstream_addr(&a, 1812).map_err(|p| invalid(format!("{key}.address"), p))?;
        let acct_address = u
            .acct_address
            .map(|a| {
                parse_upstream_addr(&a, 1813).map_err(|p| invalid(format!("{key}.acct_address"), p))
            })
            .transpose()?;
        for other in &upstreams {
            if other.address == address {
                return Err(invalid(
                    format!("{key}.address"),
                    format!(
                        "{address} is already the address of upstream \"{}\"",
                        other.name
                    ),
                ));
            }
        }
        let timeout = parse_duration(
            &u.timeout,
            &format!("{key}.timeout"),
            Duration::from_millis(100),
            Duration::from_secs(60),
        )?;
        let retries = bounded(u.retries, &format!("{key}.retries"), 0, 10)? as u8;
        let health_check = match u.health_check.as_str() {
            "status-server" => HealthCheck::StatusServer,
            "none" => HealthCheck::None,
            other => {
                return Err(invalid(
                    format!("{key}.health_check"),
                    format!("\"{other}\" is not one of \"status-server\", \"none\""),
                ));
            }
        };
        let secret = resolve_secret(
            RawSecret {
                field: "secret",
                secret: u.secret,
                secret_file: u.secret_file,
                secret_env: u.secret_env,
            },
            &key,
            base,
            env,
        )?;
        if !u.require_message_authenticator {
            warnings.push(format!(
                "{key} (\"{name}\"): require_message_authenticator = false accepts unsigned replies (BlastRADIUS, CVE-2024-3596); enable it once the server is patched"
            ));
        }
        upstreams.push(Upstream {
            name,
            address,
            acct_address,
            secret: SharedSecret::new(secret.expose()),
            timeout,
            retries,
            require_message_authenticator: u.require_message_authenticator,
            health_check,
        });
    }
    if !server.acct_listen.is_empty() && upstreams.iter().all(|u| u.acct_address.is_none()) {
        warnings.push(
            "server.acct_listen is set but no [[upstream]] has an acct_address: accounting requests will be dropped".to_owned(),
        );
    }
    Ok(upstreams)
}
