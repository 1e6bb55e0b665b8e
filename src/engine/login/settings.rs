//! The rules a login runs under, as one value: `[mfa]` and its texts, the
//! policies, `[groups]`, `[lockout]`, the providers and the directory that
//! checks passwords. Each login holds the `Arc` that was in force when it
//! started, so a reload changes the logins that start after it and none
//! that are under way (a challenge outstanding finishes under the plan,
//! texts, attempts and provider it began with).

use std::sync::Arc;

use super::address::GroupSource;
use crate::config;
use crate::mfa::LockoutPolicy;

#[derive(Debug)]
pub(in crate::engine) struct Settings {
    pub(in crate::engine) cfg: config::Mfa,
    /// What `policy::decide` applies.
    pub(in crate::engine) rules: crate::policy::Rules,
    /// Where the upstream's Access-Accept names groups (`[groups]`).
    pub(in crate::engine) groups: Option<GroupSource>,
    pub(in crate::engine) lockout: LockoutPolicy,
    /// In file order; a verification holds the one it went through.
    pub(in crate::engine) providers: Vec<Arc<config::Provider>>,
    pub(in crate::engine) public_url: Option<String>,
    /// `[primary] mode = "ldap"`: the `[[directory]]` whose bind checks
    /// passwords; `None` in the other modes, or when a reload removed it
    /// (the mode needs a restart, the directory's settings do not).
    pub(in crate::engine) directory: Option<Arc<config::Directory>>,
}

impl Settings {
    pub(in crate::engine) fn new(
        config: &config::Config,
        dictionary: &crate::radius::dict::Dictionary,
    ) -> Settings {
        // `check` and `serve` refuse a name the dictionary lacks first.
        let groups = config.groups.as_ref().and_then(|g| {
            GroupSource::resolve(g, dictionary)
                .inspect_err(|e| tracing::error!("{e}: no groups are taken from Access-Accepts"))
                .ok()
        });
        let directory = match &config.primary {
            config::Primary::Ldap { directory } => {
                let found = config.directories.iter().find(|d| d.name == *directory);
                if found.is_none() {
                    tracing::error!(
                        directory = %directory,
                        "[primary] directory names a [[directory]] the configuration no longer has: \
                         every login is refused until it is back or the proxy restarts"
                    );
                }
                found.cloned().map(Arc::new)
            }
            _ => None,
        };
        Settings {
            cfg: config.mfa.clone(),
            rules: config.rules.clone(),
            groups,
            lockout: config.lockout,
            providers: config.providers.iter().cloned().map(Arc::new).collect(),
            public_url: config.server.public_url.clone(),
            directory,
        }
    }
}
