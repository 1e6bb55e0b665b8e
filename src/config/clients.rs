//! `[[client]]`: the NASes allowed to talk to the proxy.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::mfa::{Mfa, parse_fail_mode};
use super::values::{EnvLookup, RawSecret, parse_network, required_name, resolve_secret};
use crate::policy::FailMode;
use crate::radius::crypto::SharedSecret;

#[derive(Clone, Debug)]
pub struct Client {
    pub name: String,
    pub network: IpNet,
    pub secret: SharedSecret,
    pub require_message_authenticator: bool,
    /// `[mfa] fail_mode` unless this client overrides it.
    pub fail_mode: FailMode,
    /// `[mfa] number_matching` unless this client overrides it: push
    /// approvals show a two-digit number in an Access-Challenge.
    pub number_matching: bool,
    /// Where the user's own address is read from, for `[[trusted_network]]`
    /// conditions; `None`: the NAS's source address.
    pub user_address_from: Option<UserAddressFrom>,
}

/// The attribute of an Access-Request that carries the user's address
/// (`user_address_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAddressFrom {
    CallingStationId,
    TunnelClientEndpoint,
    FramedIpAddress,
}

impl UserAddressFrom {
    const ALL: [UserAddressFrom; 3] = [
        UserAddressFrom::CallingStationId,
        UserAddressFrom::TunnelClientEndpoint,
        UserAddressFrom::FramedIpAddress,
    ];

    /// The attribute's dictionary name, as `user_address_from` gives it.
    pub fn attribute(self) -> &'static str {
        match self {
            UserAddressFrom::CallingStationId => "Calling-Station-Id",
            UserAddressFrom::TunnelClientEndpoint => "Tunnel-Client-Endpoint",
            UserAddressFrom::FramedIpAddress => "Framed-IP-Address",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    name: Option<String>,
    address: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default = "d_true")]
    require_message_authenticator: bool,
    fail_mode: Option<String>,
    number_matching: Option<bool>,
    user_address_from: Option<String>,
}

fn d_true() -> bool {
    true
}

/// The `[[client]]` tables; their defaults come from `[mfa]`.
pub(super) fn validate(
    raw: Vec<RawClient>,
    mfa: &Mfa,
    base: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Client>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "client",
            "at least one [[client]] is needed: no NAS could talk to the proxy",
        ));
    }
    let mut clients: Vec<Client> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let key = format!("client[{i}]");
        let name = required_name(c.name, &key)?;
        if clients.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another client"),
            ));
        }
        let addr = c.address.ok_or_else(|| {
            invalid(
                format!("{key}.address"),
                "missing: give an IP address or CIDR range",
            )
        })?;
        let network = parse_network(&addr).map_err(|p| invalid(format!("{key}.address"), p))?;
        if let Some(o) = clients.iter().find(|o| o.network == network) {
            return Err(invalid(
                format!("{key}.address"),
                format!("{network} is already the address of client \"{}\"", o.name),
            ));
        }
        let secret = resolve_secret(
            RawSecret {
                field: "secret",
                secret: c.secret,
                secret_file: c.secret_file,
                secret_env: c.secret_env,
            },
            &key,
            base,
            env,
        )?;
        if secret.len() < 16 {
            warnings.push(format!(
                "{key} (\"{name}\"): the shared secret is shorter than 16 characters; use a long random secret (RFC 2865 §3)"
            ));
        }
        if !c.require_message_authenticator {
            warnings.push(format!(
                "{key} (\"{name}\"): require_message_authenticator = false leaves this NAS open to BlastRADIUS (CVE-2024-3596); enable it once the NAS signs its requests"
            ));
        }
        let fail_mode = match c.fail_mode {
            None => mfa.fail_mode,
            Some(f) => parse_fail_mode(&f, &format!("{key}.fail_mode"))?,
        };
        if fail_mode == FailMode::Open {
            warnings.push(format!(
                "{key} (\"{name}\"): fail_mode = \"fail_open\": when no provider can be reached, logins through this NAS need the first factor only"
            ));
        }
        let user_address_from = c
            .user_address_from
            .map(|a| {
                UserAddressFrom::ALL
                    .into_iter()
                    .find(|u| u.attribute().eq_ignore_ascii_case(&a))
                    .ok_or_else(|| {
                        invalid(
                            format!("{key}.user_address_from"),
                            format!(
                                "\"{a}\" is not one of \"Calling-Station-Id\", \"Tunnel-Client-Endpoint\", \"Framed-IP-Address\" (leave it out for the NAS's own address)"
                            ),
                        )
                    })
            })
            .transpose()?;
        if user_address_from == Some(UserAddressFrom::FramedIpAddress) {
            warnings.push(format!(
                "{key} (\"{name}\"): user_address_from = \"Framed-IP-Address\": in an Access-Request it is only the NAS's hint (often the address a client asked for), so a user may choose one inside a trusted network; prefer Calling-Station-Id or Tunnel-Client-Endpoint"
            ));
        }
        clients.push(Client {
            name,
            network,
            secret: SharedSecret::new(secret.expose()),
            require_message_authenticator: c.require_message_authenticator,
            fail_mode,
            number_matching: c.number_matching.unwrap_or(mfa.number_matching),
            user_address_from,
        });
    }
    Ok(clients)
}
