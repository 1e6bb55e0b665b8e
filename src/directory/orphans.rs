//! Users whose `[[directory]]` is gone from the configuration (removed, or
//! renamed). Nothing syncs them any more: a user the directory deletes or
//! takes out of scope stays enabled. They are not disabled for it (a
//! renamed source would lock everyone out); they are reported instead, at
//! `serve`'s start and every reload, by `directory sync`, and on
//! `/metrics`, until an administrator puts the source back or removes
//! them.

use crate::config::Directory;
use crate::store::User;

/// The users of one source that is no longer configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphans {
    /// The source's name, as the users carry it.
    pub source: String,
    pub enabled: usize,
    /// Disabled by a sync before the source went (they stay refused).
    pub disabled: usize,
}

/// The sources `users` came from that `configured` no longer has, by name.
pub fn orphans(users: &[User], configured: &[Directory]) -> Vec<Orphans> {
    let mut found: Vec<Orphans> = Vec::new();
    for u in users {
        let Some(source) = u.source.as_deref() else {
            continue;
        };
        if configured.iter().any(|d| d.name == source) {
            continue;
        }
        let at = match found.binary_search_by(|o| o.source.as_str().cmp(source)) {
            Ok(at) => at,
            Err(at) => {
                found.insert(
                    at,
                    Orphans {
                        source: source.to_owned(),
                        enabled: 0,
                        disabled: 0,
                    },
                );
                at
            }
        };
        match u.disabled_at {
            Some(_) => found[at].disabled += 1,
            None => found[at].enabled += 1,
        }
    }
    found
}

impl Orphans {
    /// What an administrator is told, and what to do about it.
    pub fn warning(&self) -> String {
        let users = |n: usize| format!("{n} user{}", if n == 1 { "" } else { "s" });
        let disabled = match self.disabled {
            0 => String::new(),
            n => format!(" ({} disabled)", users(n)),
        };
        format!(
            "{} came from directory {}, which is no longer configured{disabled}: nothing syncs \
             them, so they stay enabled even if the directory removes them. Put the \
             [[directory]] back under the same name, or remove them \
             (`mfa-proxy report users` shows each user's source)",
            users(self.enabled + self.disabled),
            self.source,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::Method;

    fn user(name: &str, source: Option<&str>, disabled: bool) -> User {
        User {
            source: source.map(str::to_owned),
            disabled_at: disabled.then_some(1_000),
            ..User::new(name, Method::Totp)
        }
    }

    #[test]
    fn users_of_a_source_no_longer_configured_are_counted_by_source() {
        let users = [
            user("a", Some("corp"), false),
            user("b", Some("old"), false),
            user("c", Some("old"), true),
            user("d", None, false),
            user("e", Some("acme"), false),
            user("f", Some("old"), false),
        ];
        let corp = Directory::example();
        assert_eq!(corp.name, "corp");
        assert_eq!(
            orphans(&users, std::slice::from_ref(&corp)),
            [
                Orphans {
                    source: "acme".into(),
                    enabled: 1,
                    disabled: 0
                },
                Orphans {
                    source: "old".into(),
                    enabled: 2,
                    disabled: 1
                },
            ]
        );
        assert_eq!(orphans(&users[..1], &[corp]), []);
        let w = orphans(&users[1..3], &[])[0].warning();
        assert!(
            w.starts_with(
                "2 users came from directory old, which is no longer configured (1 user disabled): "
            ),
            "{w}"
        );
    }
}
