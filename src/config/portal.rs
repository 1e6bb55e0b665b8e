//! `[portal]`: the self-service portal at `{public_url}/portal/`, where
//! users sign in with their first factor (and, once enrolled, their second)
//! to enroll an authenticator app, set their phone, method and PIN, see
//! their sign-ins and report one that was not them.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::server::Server;
use super::values::{bounded, parse_duration, parse_network};

/// The portal's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// A session ends this long after the user's last page.
    pub session_idle: Duration,
    /// And this long after it began, whatever the user does.
    pub session_max: Duration,
    /// Failed sign-ins allowed per user, and per address, within
    /// `signin_window`; more are refused at once without checking.
    pub signin_per_user: u32,
    pub signin_per_address: u32,
    pub signin_window: Duration,
    /// The reverse proxies in front of the portal: a request from one of
    /// them is taken to come from the address its `X-Forwarded-For` names
    /// (see `portal::client`). Empty: every request comes from its TCP
    /// peer.
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortal {
    #[serde(default)]
    enabled: bool,
    session_idle: Option<String>,
    session_max: Option<String>,
    signin_per_user: Option<u64>,
    signin_per_address: Option<u64>,
    signin_window: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

/// `None` when the portal is off (no `[portal]`, or `enabled = false`).
pub(super) fn validate(
    raw: Option<RawPortal>,
    server: &Server,
) -> Result<Option<Portal>, ConfigError> {
    let Some(raw) = raw.filter(|r| r.enabled) else {
        return Ok(None);
    };
    if server.http_listen.is_none() {
        return Err(invalid(
            "portal.enabled",
            "the portal is served on [server] http_listen, which is not set",
        ));
    }
    if server.public_url.is_none() {
        return Err(invalid(
            "portal.enabled",
            "the portal's links (invitations) start with [server] public_url, which is not set",
        ));
    }
    let dur = |v: Option<String>, d: &str, key: &str, min: u64, max: u64| {
        parse_duration(
            v.as_deref().unwrap_or(d),
            &format!("portal.{key}"),
            Duration::from_secs(min),
            Duration::from_secs(max),
        )
    };
    let session_idle = dur(raw.session_idle, "10m", "session_idle", 60, 8 * 3600)?;
    let session_max = dur(raw.session_max, "8h", "session_max", 600, 7 * 86_400)?;
    if session_max < session_idle {
        return Err(invalid(
            "portal.session_max",
            "is shorter than session_idle",
        ));
    }
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| trusted_proxy(s, &format!("portal.trusted_proxies[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Portal {
        session_idle,
        session_max,
        signin_per_user: bounded(
            raw.signin_per_user.unwrap_or(5),
            "portal.signin_per_user",
            1,
            1000,
        )? as u32,
        signin_per_address: bounded(
            raw.signin_per_address.unwrap_or(20),
            "portal.signin_per_address",
            1,
            100_000,
        )? as u32,
        signin_window: dur(raw.signin_window, "15m", "signin_window", 60, 86_400)?,
        trusted_proxies,
    }))
}

/// One of `trusted_proxies`: an address or a network, not every address
/// (a client could then name any address it likes).
fn trusted_proxy(s: &str, key: &str) -> Result<IpNet, ConfigError> {
    let net = parse_network(s).map_err(|p| invalid(key, p))?;
    if net.prefix_len() == 0 {
        return Err(invalid(
            key,
            format!(
                "\"{s}\" trusts every address, so any client could choose the address it is \
                 limited and recorded under; name the proxies' addresses or networks"
            ),
        ));
    }
    Ok(net)
}
