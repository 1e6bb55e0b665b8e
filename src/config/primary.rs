//! `[primary]`: who checks the first factor.

use serde::Deserialize;

use super::directory::Directory;
use super::error::{ConfigError, invalid};

/// Who checks the first factor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primary {
    /// The upstream RADIUS servers (NPS).
    Upstream,
    /// argon2id password hashes in the store, for labs and small sites.
    Local,
    /// A bind as the user to the `[[directory]]` named `directory`, for
    /// sites without NPS: the directory keeps the passwords and says when
    /// an account is locked, disabled or its password expired.
    Ldap { directory: String },
}

impl Primary {
    /// The mode as `[primary] mode` spells it.
    pub fn mode(&self) -> &'static str {
        match self {
            Primary::Upstream => "upstream",
            Primary::Local => "local",
            Primary::Ldap { .. } => "ldap",
        }
    }

    /// Whether the first factor is checked here (a store or a directory)
    /// rather than by an upstream: only PAP carries a password to check.
    pub fn checked_here(&self) -> bool {
        !matches!(self, Primary::Upstream)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrimary {
    #[serde(default = "d_primary_mode")]
    mode: String,
    directory: Option<String>,
}

impl Default for RawPrimary {
    fn default() -> Self {
        RawPrimary {
            mode: d_primary_mode(),
            directory: None,
        }
    }
}

fn d_primary_mode() -> String {
    "upstream".into()
}

/// `[primary]`, its `directory` checked against the `[[directory]]`
/// sources (validated first).
pub(super) fn validate(raw: RawPrimary, directories: &[Directory]) -> Result<Primary, ConfigError> {
    let primary = match raw.mode.as_str() {
        "upstream" => Primary::Upstream,
        "local" => Primary::Local,
        "ldap" => {
            let names = || {
                let n: Vec<&str> = directories.iter().map(|d| d.name.as_str()).collect();
                if n.is_empty() {
                    "there is no [[directory]]".to_owned()
                } else {
                    format!("the [[directory]] names are: {}", n.join(", "))
                }
            };
            let directory = raw.directory.clone().ok_or_else(|| {
                invalid(
                    "primary.directory",
                    format!(
                        "missing: the name of the [[directory]] whose bind checks passwords in mode = \"ldap\" ({})",
                        names()
                    ),
                )
            })?;
            if !directories.iter().any(|d| d.name == directory) {
                return Err(invalid(
                    "primary.directory",
                    format!("\"{directory}\" names no [[directory]] ({})", names()),
                ));
            }
            Primary::Ldap { directory }
        }
        other => {
            return Err(invalid(
                "primary.mode",
                format!("\"{other}\" is not one of \"upstream\", \"local\", \"ldap\""),
            ));
        }
    };
    if raw.directory.is_some() && !matches!(primary, Primary::Ldap { .. }) {
        return Err(invalid(
            "primary.directory",
            format!("is for mode = \"ldap\"; mode is \"{}\"", primary.mode()),
        ));
    }
    Ok(primary)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{GOOD, expect_err, load};
    use super::*;
    use crate::config::{Change, diff, in_force};

    /// GOOD in mode `mode` (with `directory` when given), and one
    /// `[[directory]]` "corp".
    fn with(primary: &str) -> String {
        format!(
            "{GOOD}\n[primary]\n{primary}\n\
             [[directory]]\nname = \"corp\"\nurl = \"ldaps://dc1.corp.example\"\n\
             bind_dn = \"CN=mfa-sync,OU=Service,DC=corp,DC=example\"\nbind_password = \"never-shown\"\n\
             base_dn = \"DC=corp,DC=example\"\nfilter = \"(objectClass=user)\"\n\
             name_attribute = \"sAMAccountName\"\n"
        )
    }

    #[test]
    fn ldap_mode_names_its_directory() {
        let c = load(&with("mode = \"ldap\"\ndirectory = \"corp\"")).expect("valid");
        assert_eq!(
            c.primary,
            Primary::Ldap {
                directory: "corp".into()
            }
        );
        assert_eq!(c.primary.mode(), "ldap");
        let summary = c.summary().to_string();
        assert!(
            summary.contains(
                "primary: ldap (a bind as the user to directory corp), second factor: on"
            ),
            "{summary}"
        );
        assert!(!summary.contains("never-shown"));
    }

    #[test]
    fn ldap_mode_mistakes_name_their_key() {
        expect_err(
            &with("mode = \"ldap\""),
            "primary.directory",
            "missing: the name of the [[directory]] whose bind checks passwords in mode = \"ldap\" (the [[directory]] names are: corp)",
        );
        expect_err(
            &with("mode = \"ldap\"\ndirectory = \"crop\""),
            "primary.directory",
            "\"crop\" names no [[directory]] (the [[directory]] names are: corp)",
        );
        expect_err(
            &format!("{GOOD}\n[primary]\nmode = \"ldap\"\ndirectory = \"corp\"\n"),
            "primary.directory",
            "there is no [[directory]]",
        );
        expect_err(
            &with("mode = \"upstream\"\ndirectory = \"corp\""),
            "primary.directory",
            "is for mode = \"ldap\"; mode is \"upstream\"",
        );
        expect_err(
            &with("mode = \"ldap\"\ndirectory = \"corp\"\n[mfa]\nenabled = false"),
            "mfa.enabled",
            "must be true with [primary] mode = \"ldap\"",
        );
        expect_err(
            &with("mode = \"kerberos\""),
            "primary.mode",
            "\"kerberos\" is not one of \"upstream\", \"local\", \"ldap\"",
        );
    }

    #[test]
    fn ldap_mode_needs_no_upstream() {
        let text = with("mode = \"ldap\"\ndirectory = \"corp\"");
        let start = text.find("[[upstream]]").expect("GOOD has one");
        let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
        let without = format!("{}{}", &text[..start], &text[end..]);
        assert!(!without.contains("[[upstream]]"), "{without}");
        let c = load(&without).expect("valid without upstreams");
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn a_reload_keeps_the_primary_directory_and_says_it_needs_a_restart() {
        let old = load(&with("mode = \"ldap\"\ndirectory = \"corp\"")).expect("valid");
        let text = with("mode = \"ldap\"\ndirectory = \"hq\"").replace(
            "[[directory]]",
            "[[directory]]\nname = \"hq\"\nurl = \"ldaps://dc1.hq.example\"\n\
             bind_dn = \"CN=s,DC=hq\"\nbind_password = \"p\"\nbase_dn = \"DC=hq\"\n\
             filter = \"(objectClass=user)\"\nname_attribute = \"uid\"\n[[directory]]",
        );
        let new = load(&text).expect("valid");
        let changes = diff(&old, &new);
        assert!(
            changes.contains(&Change::NeedsRestart {
                key: "primary.directory"
            }),
            "{changes:?}"
        );
        assert_eq!(in_force(&old, &new).primary, old.primary);
        let local = load(&with("mode = \"local\"")).expect("valid");
        assert!(diff(&old, &local).contains(&Change::NeedsRestart {
            key: "primary.mode"
        }));
    }
}
