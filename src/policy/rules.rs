//! What an administrator writes: `[[policy]]` rules, `[[trusted_network]]`
//! ranges and the defaults from `[mfa]` and each `[[client]]`. The
//! configuration parses and validates them into these types; [`super::decide`]
//! reads nothing else.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::mfa::Method;

/// What happens to a user with no second factor registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unenrolled {
    Reject,
    /// Let them in after the first factor (logged).
    Accept,
}

/// What happens to a login whose out-of-band verification cannot be
/// delivered (no provider reachable), or whose store is unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Reject (the default).
    Closed,
    /// Accept after the first factor alone, logged loudly.
    Open,
}

/// Whether a login needs a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaRule {
    Required,
    /// Let in after the first factor (`SUCCESS_SKIPPED_BY_POLICY`).
    Skip,
    /// Refuse even with a right first factor (`FAILED_DENIED_BY_POLICY`).
    Deny,
}

/// Which later logins a verified second factor lets in without a new one
/// (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RememberScope {
    /// The same user (`SUCCESS_USED_CACHE`).
    User,
    /// The same user, authentication type, application and client address
    /// (`SUCCESS_USED_IP_BASED_CACHE`).
    Ip,
    /// The same user, authentication type and application
    /// (`SUCCESS_USED_APP_BASED_CACHE`).
    App,
}

impl RememberScope {
    pub fn as_str(self) -> &'static str {
        match self {
            RememberScope::User => "user",
            RememberScope::Ip => "ip",
            RememberScope::App => "app",
        }
    }
}

/// Remembered logins under a policy: the scope and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remember {
    pub scope: RememberScope,
    pub duration: Duration,
}

/// A named set of address ranges (`[[trusted_network]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedNetwork {
    pub name: String,
    pub ranges: Vec<IpNet>,
}

impl TrustedNetwork {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|r| r.contains(&ip))
    }
}

/// When a policy applies: every condition given must hold; a list within one
/// condition holds when any of its items does. No condition: every login.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `[[client]]` names.
    pub clients: Vec<String>,
    /// NAS-Identifier values, exactly.
    pub nas_identifiers: Vec<String>,
    /// User names, compared without case.
    pub users: Vec<String>,
    /// Group names, compared without case: the store's groups of the user
    /// and those the upstream's Access-Accept carries.
    pub groups: Vec<String>,
    /// Indexes into [`Rules::networks`].
    pub networks: Vec<usize>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
            && self.nas_identifiers.is_empty()
            && self.users.is_empty()
            && self.groups.is_empty()
            && self.networks.is_empty()
    }
}

/// What a policy sets; `None` leaves the default (from `[mfa]` or the
/// client) in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub mfa: Option<MfaRule>,
    /// The methods a login may use, in order of preference; `None`: all.
    pub methods: Option<Vec<Method>>,
    pub unenrolled: Option<Unenrolled>,
    pub fail_mode: Option<FailMode>,
    pub number_matching: Option<bool>,
    /// `Some(None)`: remembering is off under this policy ("off").
    pub remember: Option<Option<Remember>>,
    /// The language of prompts and messages, over the user's own.
    pub language: Option<String>,
}

/// One `[[policy]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub when: Conditions,
    pub set: Settings,
}

/// The defaults of a client (`[[client]]` keys that predate policies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientDefaults {
    pub fail_mode: FailMode,
    pub number_matching: bool,
}

/// Every rule [`super::decide`] applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// `[[trusted_network]]`, in file order.
    pub networks: Vec<TrustedNetwork>,
    /// `[[policy]]`, in file order: the first that matches applies.
    pub policies: Vec<Policy>,
    /// `[mfa] unenrolled`.
    pub unenrolled: Unenrolled,
    /// `[mfa] fallback_oath`.
    pub fallback_oath: bool,
}

impl Rules {
    /// The longest time any policy remembers a login: older remembered
    /// logins can go.
    pub fn longest_remember(&self) -> Duration {
        self.policies
            .iter()
            .filter_map(|p| p.set.remember.flatten())
            .map(|r| r.duration)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            networks: Vec::new(),
            policies: Vec::new(),
            unenrolled: Unenrolled::Reject,
            fallback_oath: true,
        }
    }
}
