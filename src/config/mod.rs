//! `proxy.toml`: the contract administrators edit.
//!
//! Parsing is two steps. Serde reads the file into raw structs with
//! `deny_unknown_fields`, keeping addresses and durations as text; then
//! [`validate`] turns them into typed values and, on the first problem, names
//! the key (`upstream[1].timeout`; in the policy tables the entry by its
//! name, `[[policy]] "contractors": networks`) and says what is wrong. Secret
//! values never appear in an error, even when the file is malformed around
//! them.
//!
//! Each section of the file has its own module here, holding its raw struct,
//! its validated type and its `validate`: `[server]` in `server.rs`,
//! `[[client]]` in `clients.rs`, `[mfa]` and `[messages.LANG]` in `mfa.rs`,
//! `[[policy]]`, `[[trusted_network]]` and `[groups]` in `policy.rs`,
//! `[[directory]]` in `directory.rs`, `[enrollment]` in `enrollment.rs`,
//! and so on. This module reads the file and calls them in order; values
//! every section parses alike (durations, ranges, secrets) are in
//! `values.rs`.

mod clients;
pub mod diff;
mod directory;
mod enrollment;
mod error;
mod lockout;
mod mfa;
mod policy;
mod portal;
mod primary;
mod providers;
mod proxy;
mod server;
mod store;
mod summary;
mod upstreams;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_diff;
#[cfg(test)]
mod tests_directory;
#[cfg(test)]
mod tests_enrollment;
#[cfg(test)]
mod tests_policy;
#[cfg(test)]
mod tests_portal;

use std::path::Path;

use serde::Deserialize;

pub use crate::policy::{FailMode, Unenrolled};
pub use crate::radius::crypto::SharedSecret;
pub use crate::secret::Secret;
pub use clients::{Client, UserAddressFrom};
pub use diff::{Change, Section, diff, in_force};
pub use directory::{Directory, DirectoryTls};
pub use enrollment::Enrollment;
pub use error::ConfigError;
pub use mfa::{Mfa, Texts, parse_language_tag};
pub use policy::GroupsFrom;
pub use portal::Portal;
pub use primary::Primary;
pub use providers::{Notify, Provider, ProviderKind, SmtpTls};
pub use proxy::{Proxy, Selection, WhenAllDown};
pub use server::{HttpTls, Server};
pub use store::{PostgresConfig, StoreConfig};
pub use summary::Summary;
pub use upstreams::{HealthCheck, Upstream};
pub use values::parse_duration;

use error::{invalid, syntax_error};
use values::EnvLookup;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: Server,
    pub proxy: Proxy,
    pub clients: Vec<Client>,
    pub upstreams: Vec<Upstream>,
    pub store: StoreConfig,
    pub mfa: Mfa,
    pub lockout: crate::mfa::LockoutPolicy,
    pub primary: Primary,
    /// Out-of-band delivery (push, call, SMS), in file order.
    pub providers: Vec<Provider>,
    /// Who hears about fraud reports.
    pub notify: Option<Notify>,
    /// `[[policy]]` and `[[trusted_network]]`, with the defaults of `[mfa]`.
    pub rules: crate::policy::Rules,
    /// `[groups]`: where the upstream's Access-Accept names the user's
    /// groups.
    pub groups: Option<GroupsFrom>,
    /// `[[directory]]`: LDAP sources users are synced from, in file order.
    pub directories: Vec<Directory>,
    /// `[portal]`: the self-service portal, when enabled.
    pub portal: Option<Portal>,
    /// `[enrollment]`: the mail inviting users to enroll.
    pub enrollment: Option<Enrollment>,
    /// Things that work but that an administrator should hear about.
    pub warnings: Vec<String>,
}

/// The file as written: one raw struct per section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: server::RawServer,
    #[serde(default)]
    proxy: proxy::RawProxy,
    #[serde(default)]
    client: Vec<clients::RawClient>,
    #[serde(default)]
    upstream: Vec<upstreams::RawUpstream>,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    mfa: mfa::RawMfa,
    #[serde(default)]
    lockout: lockout::RawLockout,
    #[serde(default)]
    primary: primary::RawPrimary,
    #[serde(default)]
    provider: Vec<providers::RawProvider>,
    notify: Option<providers::RawNotify>,
    #[serde(default)]
    messages: std::collections::BTreeMap<String, mfa::RawTexts>,
    #[serde(default)]
    trusted_network: Vec<policy::RawTrustedNetwork>,
    groups: Option<policy::RawGroups>,
    #[serde(default)]
    policy: Vec<policy::RawPolicy>,
    #[serde(default)]
    directory: Vec<directory::RawDirectory>,
    portal: Option<portal::RawPortal>,
    enrollment: Option<enrollment::RawEnrollment>,
}

impl Config {
    /// Reads and validates a configuration file. Relative `secret_file`
    /// paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text`; `path` names it in errors and anchors
    /// relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(&e, text, path))?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate(raw, base, &|name| std::env::var(name).ok())
    }

    /// A summary for `mfa-proxy check`: listeners, clients and upstreams,
    /// never a secret.
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }
}

/// Validates the sections in an order where each finds what it depends on
/// already checked; the first problem is the error.
fn validate(raw: RawConfig, base: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let (mut server, tls_files) = server::validate(raw.server)?;
    let proxy = proxy::validate(raw.proxy)?;
    let mfa_enabled = raw.mfa.enabled;
    let mfa = mfa::validate(raw.mfa, raw.messages)?;
    let clients = clients::validate(raw.client, &mfa, base, env, &mut warnings)?;
    let directories = directory::validate(raw.directory, base, env, &mut warnings)?;
    let primary = primary::validate(raw.primary, &directories)?;
    let upstreams = upstreams::validate(raw.upstream, &primary, &server, base, env, &mut warnings)?;
    match primary {
        Primary::Local if !mfa_enabled => {
            return Err(invalid(
                "mfa.enabled",
                "must be true with [primary] mode = \"local\": local passwords live in the store",
            ));
        }
        Primary::Ldap { .. } if !mfa_enabled => {
            return Err(invalid(
                "mfa.enabled",
                "must be true with [primary] mode = \"ldap\": the second factor follows the directory's bind, and every login is recorded in the store",
            ));
        }
        _ => {}
    }
    let lockout = lockout::validate(raw.lockout)?;
    mfa::warn(&mfa, &mut warnings);
    server::validate_tls(&mut server, tls_files, base, &mut warnings)?;
    let store = store::validate(raw.store, base, env)?;
    let providers = providers::validate(raw.provider, &server, base, env, &mut warnings)?;
    let notify = raw.notify.map(providers::validate_notify).transpose()?;
    let groups = raw.groups.map(policy::validate_groups).transpose()?;
    let portal = portal::validate(raw.portal, &server)?;
    if portal.is_some() && !mfa_enabled {
        return Err(invalid(
            "portal.enabled",
            "the portal manages the second factor, and [mfa] enabled is false",
        ));
    }
    let enrollment = enrollment::validate(
        raw.enrollment,
        enrollment::Context {
            server: &server,
            notify: notify.as_ref(),
            directories: &directories,
            mfa: &mfa,
            portal: portal.is_some(),
        },
        base,
        &mut warnings,
    )?;
    let rules = policy::validate(
        raw.trusted_network,
        raw.policy,
        policy::Known {
            clients: &clients,
            providers: &providers,
            mfa: &mfa,
        },
        &mut warnings,
    )?;
    Ok(Config {
        server,
        proxy,
        clients,
        upstreams,
        store,
        mfa,
        lockout,
        primary,
        providers,
        notify,
        rules,
        groups,
        directories,
        portal,
        enrollment,
        warnings,
    })
}
