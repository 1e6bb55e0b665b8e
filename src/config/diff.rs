//! What a reload changes: a pure difference of two validated configurations
//! (as rathole's `calculate_events`), for the log and for deciding what
//! the running proxy can take on without a restart.
//!
//! [`diff`] names every entry added, removed or changed (by its name and
//! the keys that differ, never their values: a changed secret shows as
//! `secret`), every list whose order matters that was reordered, and every
//! key that only a restart applies ([`Change::NeedsRestart`]). [`in_force`]
//! is the configuration a reload puts in force: the new one, with each of
//! those keys kept as it was.
//!
//! Keys that need a restart: `[server] name` (every audit record carries
//! it), `dictionary`, `http_listen` and the HTTP connection limits (the
//! HTTP listener is bound once), `[store]` (the database is opened once),
//! `[primary] mode` and `[mfa] enabled` (they decide whether a store runs
//! at all), `[primary] directory` with them. A changed `[[directory]]` is
//! live: its next sync, and the next login it checks, use it. A changed
//! `[enrollment]` (its template files included) is live too.

use std::fmt;

use subtle::ConstantTimeEq;

use super::{Client, Config, Directory, Enrollment, Mfa, Notify, Provider, Proxy, Texts, Upstream};
use crate::mfa::LockoutPolicy;
use crate::policy::{Policy, Rules, TrustedNetwork};

/// The part of the file a [`Change`] is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    Client,
    Upstream,
    /// `[server] auth_listen`: one address.
    AuthListener,
    /// `[server] acct_listen`: one address.
    AcctListener,
    /// `[server]` keys applied live: `public_url`, `http_tls_*`.
    Server,
    Provider,
    Notify,
    Policy,
    TrustedNetwork,
    Groups,
    /// `[mfa]`, its default texts included.
    Mfa,
    /// `[messages.LANG]`.
    Messages,
    Lockout,
    Proxy,
    /// `[[directory]]`: taken on at the source's next sync.
    Directory,
    /// `[enrollment]`: taken on by the next invitation.
    Enrollment,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Client => "[[client]]",
            Section::Upstream => "[[upstream]]",
            Section::AuthListener => "auth listener",
            Section::AcctListener => "accounting listener",
            Section::Server => "[server]",
            Section::Provider => "[[provider]]",
            Section::Notify => "[notify]",
            Section::Policy => "[[policy]]",
            Section::TrustedNetwork => "[[trusted_network]]",
            Section::Groups => "[groups]",
            Section::Mfa => "[mfa]",
            Section::Messages => "[messages]",
            Section::Lockout => "[lockout]",
            Section::Proxy => "[proxy]",
            Section::Directory => "[[directory]]",
            Section::Enrollment => "[enrollment]",
        }
    }
}

/// One difference between two configurations. Names and key names only:
/// a change never carries a value, so it can be logged as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// An entry appeared: a client, upstream, provider, policy or trusted
    /// network by name, a listener by address, a language by tag, or a
    /// section that was left out before (`name` empty).
    Added {
        section: Section,
        name: String,
    },
    Removed {
        section: Section,
        name: String,
    },
    /// An entry (or a section, `name` empty) whose `keys` differ.
    Changed {
        section: Section,
        name: String,
        keys: Vec<&'static str>,
    },
    /// The same entries in another order, where order decides: upstreams
    /// (failover), providers (the first offering a method), policies (the
    /// first that matches).
    Reordered {
        section: Section,
    },
    /// A key only a restart applies; the running proxy keeps its value.
    NeedsRestart {
        key: &'static str,
    },
}

impl Change {
    /// Whether the running proxy can take this change on.
    pub fn is_live(&self) -> bool {
        !matches!(self, Change::NeedsRestart { .. })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = |f: &mut fmt::Formatter<'_>, s: &Section, name: &str| match s {
            Section::AuthListener | Section::AcctListener => write!(f, "{} {name}", s.name()),
            Section::Messages => write!(f, "[messages.{name}]"),
            _ if name.is_empty() => f.write_str(s.name()),
            _ => write!(f, "{} \"{name}\"", s.name()),
        };
        match self {
            Change::Added { section, name } => {
                entry(f, section, name)?;
                f.write_str(" added")
            }
            Change::Removed { section, name } => {
                entry(f, section, name)?;
                f.write_str(" removed")
            }
            Change::Changed {
                section,
                name,
                keys,
            } => {
                entry(f, section, name)?;
                write!(f, " changed: {}", keys.join(", "))
            }
            Change::Reordered { section } => write!(f, "{} reordered", section.name()),
            Change::NeedsRestart { key } => {
                write!(f, "{key} changed: it takes effect after a restart")
            }
        }
    }
}

/// Every difference from `old` to `new`, section by section in file order.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    server(old, new, &mut out);
    named(
        Section::Client,
        &old.clients,
        &new.clients,
        |c| &c.name,
        client_keys,
        false,
        &mut out,
    );
    named(
        Section::Upstream,
        &old.upstreams,
        &new.upstreams,
        |u| &u.name,
        upstream_keys,
        true,
        &mut out,
    );
    let url = |c: &Config| {
        c.store
            .postgres
            .as_ref()
            .map(|p| (p.url.clone(), p.pool_size))
    };
    if url(old) != url(new) {
        out.push(Change::NeedsRestart { key: "store.url" });
    }
    if old.store.path != new.store.path {
        out.push(Change::NeedsRestart { key: "store.path" });
    }
    if old.store.key_file != new.store.key_file {
        out.push(Change::NeedsRestart {
            key: "store.key_file",
        });
    }
    if old.store.audit_keep != new.store.audit_keep {
        out.push(Change::NeedsRestart {
            key: "store.audit_keep",
        });
    }
    if old.primary.mode() != new.primary.mode() {
        out.push(Change::NeedsRestart {
            key: "primary.mode",
        });
    } else if old.primary != new.primary {
        out.push(Change::NeedsRestart {
            key: "primary.directory",
        });
    }
    if old.portal != new.portal {
        out.push(Change::NeedsRestart { key: "portal" });
    }
    mfa(&old.mfa, &new.mfa, &mut out);
    section(
        Section::Lockout,
        lockout_keys(&old.lockout, &new.lockout),
        &mut out,
    );
    section(Section::Proxy, proxy_keys(&old.proxy, &new.proxy), &mut out);
    named(
        Section::Provider,
        &old.providers,
        &new.providers,
        |p| &p.name,
        provider_keys,
        true,
        &mut out,
    );
    optional(
        Section::Notify,
        old.notify.as_ref(),
        new.notify.as_ref(),
        notify_keys,
        &mut out,
    );
    optional(
        Section::Groups,
        old.groups.as_ref(),
        new.groups.as_ref(),
        |a, b| {
            let mut k = Vec::new();
            if a.attribute != b.attribute {
                k.push("from_attribute");
            }
            if a.prefix != b.prefix {
                k.push("prefix");
            }
            k
        },
        &mut out,
    );
    named(
        Section::TrustedNetwork,
        &old.rules.networks,
        &new.rules.networks,
        |n| &n.name,
        |a: &TrustedNetwork, b: &TrustedNetwork| {
            if a.ranges == b.ranges {
                vec![]
            } else {
                vec!["ranges"]
            }
        },
        false,
        &mut out,
    );
    let policy_keys = |a: &Policy, b: &Policy| policy_keys(a, &old.rules, b, &new.rules);
    named(
        Section::Policy,
        &old.rules.policies,
        &new.rules.policies,
        |p| &p.name,
        policy_keys,
        true,
        &mut out,
    );
    named(
        Section::Directory,
        &old.directories,
        &new.directories,
        |d| &d.name,
        directory_keys,
        false,
        &mut out,
    );
    optional(
        Section::Enrollment,
        old.enrollment.as_ref(),
        new.enrollment.as_ref(),
        enrollment_keys,
        &mut out,
    );
    out
}

/// `new`, with every key that needs a restart as it is in `old`: what a
/// reload of `new` puts in force.
pub fn in_force(old: &Config, new: &Config) -> Config {
    let mut c = new.clone();
    c.server.name = old.server.name.clone();
    c.server.dictionary = old.server.dictionary.clone();
    c.server.http_listen = old.server.http_listen;
    c.server.http_max_connections = old.server.http_max_connections;
    c.server.http_max_connections_per_address = old.server.http_max_connections_per_address;
    c.store = old.store.clone();
    c.primary = old.primary.clone();
    c.portal = old.portal.clone();
    c.mfa.enabled = old.mfa.enabled;
    c
}

fn section(s: Section, keys: Vec<&'static str>, out: &mut Vec<Change>) {
    if !keys.is_empty() {
        out.push(Change::Changed {
            section: s,
            name: String::new(),
            keys,
        });
    }
}

/// Entries matched by name: added, removed, changed, and (where `ordered`)
/// whether the entries in both kept their relative order.
fn named<T>(
    s: Section,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
    keys: impl Fn(&T, &T) -> Vec<&'static str>,
    ordered: bool,
    out: &mut Vec<Change>,
) {
    for o in old {
        if !new.iter().any(|n| name(n) == name(o)) {
            out.push(Change::Removed {
                section: s,
                name: name(o).clone(),
            });
        }
    }
    for n in new {
        match old.iter().find(|o| name(o) == name(n)) {
            None => out.push(Change::Added {
                section: s,
                name: name(n).clone(),
            }),
            Some(o) => {
                let k = keys(o, n);
                if !k.is_empty() {
                    out.push(Change::Changed {
                        section: s,
                        name: name(n).clone(),
                        keys: k,
                    });
                }
            }
        }
    }
    if ordered {
        let kept = |from: &[T], other: &[T]| -> Vec<String> {
            from.iter()
                .filter(|a| other.iter().any(|b| name(a) == name(b)))
                .map(|a| name(a).clone())
                .collect()
        };
        if kept(old, new) != kept(new, old) {
            out.push(Change::Reordered { section: s });
        }
    }
}

fn optional<T>(
    s: Section,
    old: Option<&T>,
    new: Option<&T>,
    keys: impl Fn(&T, &T) -> Vec<&'static str>,
    out: &mut Vec<Change>,
) {
    let name = String::new();
    match (old, new) {
        (None, None) => {}
        (None, Some(_)) => out.push(Change::Added { section: s, name }),
        (Some(_), None) => out.push(Change::Removed { section: s, name }),
        (Some(a), Some(b)) => section(s, keys(a, b), out),
    }
}

/// Secrets are compared in constant time, like every secret-derived value.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Pushes `key` when `differs`.
fn keys_of(pairs: &[(&'static str, bool)]) -> Vec<&'static str> {
    pairs.iter().filter(|(_, d)| *d).map(|(k, _)| *k).collect()
}

fn server(old: &Config, new: &Config, out: &mut Vec<Change>) {
    let (a, b) = (&old.server, &new.server);
    for (key, differs) in [
        ("server.name", a.name != b.name),
        ("server.dictionary", a.dictionary != b.dictionary),
        ("server.http_listen", a.http_listen != b.http_listen),
        (
            "server.http_max_connections",
            a.http_max_connections != b.http_max_connections,
        ),
        (
            "server.http_max_connections_per_address",
            a.http_max_connections_per_address != b.http_max_connections_per_address,
        ),
    ] {
        if differs {
            out.push(Change::NeedsRestart { key });
        }
    }
    listeners(Section::AuthListener, &a.auth_listen, &b.auth_listen, out);
    listeners(Section::AcctListener, &a.acct_listen, &b.acct_listen, out);
    // A certificate is read again on every reload (so a renewed one is
    // taken); only whether there is one is a difference here.
    section(
        Section::Server,
        keys_of(&[
            ("public_url", a.public_url != b.public_url),
            ("http_tls", a.http_tls.is_some() != b.http_tls.is_some()),
        ]),
        out,
    );
}

/// Listener addresses as multisets (port 0, "any port", may repeat).
fn listeners(
    s: Section,
    old: &[std::net::SocketAddr],
    new: &[std::net::SocketAddr],
    out: &mut Vec<Change>,
) {
    let missing = |from: &[std::net::SocketAddr], other: &[std::net::SocketAddr]| {
        let mut left = other.to_vec();
        let mut gone = Vec::new();
        for a in from {
            match left.iter().position(|b| b == a) {
                Some(i) => {
                    left.swap_remove(i);
                }
                None => gone.push(*a),
            }
        }
        gone
    };
    for a in missing(old, new) {
        out.push(Change::Removed {
            section: s,
            name: a.to_string(),
        });
    }
    for a in missing(new, old) {
        out.push(Change::Added {
            section: s,
            name: a.to_string(),
        });
    }
}

/// The keys that differ between two entries of the same name.
pub fn client_keys(a: &Client, b: &Client) -> Vec<&'static str> {
    keys_of(&[
        ("address", a.network != b.network),
        ("secret", !same_secret(a.secret.expose(), b.secret.expose())),
        (
            "require_message_authenticator",
            a.require_message_authenticator != b.require_message_authenticator,
        ),
        ("fail_mode", a.fail_mode != b.fail_mode),
        ("number_matching", a.number_matching != b.number_matching),
        (
            "user_address_from",
            a.user_address_from != b.user_address_from,
        ),
    ])
}

/// The keys that differ between two entries of the same name.
pub fn upstream_keys(a: &Upstream, b: &Upstream) -> Vec<&'static str> {
    keys_of(&[
        ("address", a.address != b.address),
        ("acct_address", a.acct_address != b.acct_address),
        ("secret", !same_secret(a.secret.expose(), b.secret.expose())),
        ("timeout", a.timeout != b.timeout),
        ("retries", a.retries != b.retries),
        (
            "require_message_authenticator",
            a.require_message_authenticator != b.require_message_authenticator,
        ),
        ("health_check", a.health_check != b.health_check),
    ])
}

/// The keys that differ between two entries of the same name.
pub fn provider_keys(a: &Provider, b: &Provider) -> Vec<&'static str> {
    let key = match (&a.key, &b.key) {
        (None, None) => false,
        (Some(x), Some(y)) => !same_secret(x.expose(), y.expose()),
        _ => true,
    };
    keys_of(&[
        ("type", a.kind != b.kind),
        ("methods", a.methods != b.methods),
        ("key", key),
        ("timeout", a.timeout != b.timeout),
        ("retries", a.retries != b.retries),
    ])
}

/// The keys that differ between two entries of the same name.
pub fn directory_keys(a: &Directory, b: &Directory) -> Vec<&'static str> {
    keys_of(&[
        ("url", a.url != b.url),
        ("starttls", a.tls != b.tls),
        ("ca_file", a.ca_file != b.ca_file),
        ("bind_dn", a.bind_dn != b.bind_dn),
        (
            "bind_password",
            !same_secret(a.bind_password.expose(), b.bind_password.expose()),
        ),
        ("base_dn", a.base_dn != b.base_dn),
        ("filter", a.filter != b.filter),
        ("group", a.group != b.group),
        ("name_attribute", a.name_attribute != b.name_attribute),
        ("email_attribute", a.email_attribute != b.email_attribute),
        ("phone_attribute", a.phone_attribute != b.phone_attribute),
        (
            "language_attribute",
            a.language_attribute != b.language_attribute,
        ),
        ("groups_attribute", a.groups_attribute != b.groups_attribute),
        ("default_method", a.default_method != b.default_method),
        ("default_language", a.default_language != b.default_language),
        ("invite", a.invite != b.invite),
        ("interval", a.interval != b.interval),
        ("remove_after", a.remove_after != b.remove_after),
        ("page_size", a.page_size != b.page_size),
        ("timeout", a.timeout != b.timeout),
    ])
}

fn notify_keys(a: &Notify, b: &Notify) -> Vec<&'static str> {
    keys_of(&[
        ("smtp", a.smtp != b.smtp),
        ("tls", a.tls != b.tls),
        ("from", a.from != b.from),
        ("to", a.to != b.to),
    ])
}

/// A template file edited in place shows as `templates`: the files are
/// read again on every reload.
fn enrollment_keys(a: &Enrollment, b: &Enrollment) -> Vec<&'static str> {
    keys_of(&[
        ("from", a.from != b.from),
        ("invite_valid", a.invite_valid != b.invite_valid),
        (
            "templates",
            a.templates_dir != b.templates_dir || a.templates != b.templates,
        ),
        ("smtp", a.smtp != b.smtp),
        ("tls", a.tls != b.tls),
    ])
}

fn lockout_keys(a: &LockoutPolicy, b: &LockoutPolicy) -> Vec<&'static str> {
    keys_of(&[
        ("denials", a.denials != b.denials),
        ("reset_after", a.reset_after != b.reset_after),
        ("unblock_after", a.unblock_after != b.unblock_after),
    ])
}

fn proxy_keys(a: &Proxy, b: &Proxy) -> Vec<&'static str> {
    keys_of(&[
        ("selection", a.selection != b.selection),
        ("when_all_down", a.when_all_down != b.when_all_down),
        ("dedup_window", a.dedup_window != b.dedup_window),
        (
            "dedup_max_entries",
            a.dedup_max_entries != b.dedup_max_entries,
        ),
        ("upstream_sockets", a.upstream_sockets != b.upstream_sockets),
        ("check_interval", a.check_interval != b.check_interval),
        ("dead_after", a.dead_after != b.dead_after),
        ("alive_after", a.alive_after != b.alive_after),
        ("revive_after", a.revive_after != b.revive_after),
    ])
}

fn text_keys(a: &Texts, b: &Texts) -> Vec<&'static str> {
    keys_of(&[
        ("prompt", a.prompt != b.prompt),
        ("retry_prompt", a.retry_prompt != b.retry_prompt),
        ("sms_prompt", a.sms_prompt != b.sms_prompt),
        ("sms_retry_prompt", a.sms_retry_prompt != b.sms_retry_prompt),
        ("sms_pin_prompt", a.sms_pin_prompt != b.sms_pin_prompt),
        (
            "sms_pin_retry_prompt",
            a.sms_pin_retry_prompt != b.sms_pin_retry_prompt,
        ),
        ("fallback_prompt", a.fallback_prompt != b.fallback_prompt),
        ("busy_message", a.busy_message != b.busy_message),
        ("number_prompt", a.number_prompt != b.number_prompt),
        ("push_message", a.push_message != b.push_message),
        ("call_message", a.call_message != b.call_message),
        ("sms_message", a.sms_message != b.sms_message),
    ])
}

fn mfa(a: &Mfa, b: &Mfa, out: &mut Vec<Change>) {
    if a.enabled != b.enabled {
        out.push(Change::NeedsRestart { key: "mfa.enabled" });
    }
    let mut keys = keys_of(&[
        ("unenrolled", a.unenrolled != b.unenrolled),
        (
            "challenge_timeout",
            a.challenge_timeout != b.challenge_timeout,
        ),
        ("max_attempts", a.max_attempts != b.max_attempts),
        ("inline_separator", a.inline_separator != b.inline_separator),
        ("reject_delay", a.reject_delay != b.reject_delay),
        ("totp_window", a.totp_window != b.totp_window),
        ("push_timeout", a.push_timeout != b.push_timeout),
        ("call_timeout", a.call_timeout != b.call_timeout),
        (
            "sms_code_lifetime",
            a.sms_code_lifetime != b.sms_code_lifetime,
        ),
        ("busy_grace", a.busy_grace != b.busy_grace),
        ("fail_mode", a.fail_mode != b.fail_mode),
        (
            "fraud_code",
            !same_secret(a.fraud_code.as_bytes(), b.fraud_code.as_bytes()),
        ),
        ("fallback_oath", a.fallback_oath != b.fallback_oath),
        ("max_pending", a.max_pending != b.max_pending),
        ("fraud_block", a.fraud_block != b.fraud_block),
        ("number_matching", a.number_matching != b.number_matching),
        ("language", a.language != b.language),
    ]);
    keys.extend(text_keys(&a.texts, &b.texts));
    section(Section::Mfa, keys, out);
    let mut tags: Vec<&String> = a.languages.keys().chain(b.languages.keys()).collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        let name = tag.clone();
        match (a.languages.get(tag), b.languages.get(tag)) {
            (Some(_), None) => out.push(Change::Removed {
                section: Section::Messages,
                name,
            }),
            (None, Some(_)) => out.push(Change::Added {
                section: Section::Messages,
                name,
            }),
            (Some(x), Some(y)) => {
                let keys = text_keys(x, y);
                if !keys.is_empty() {
                    out.push(Change::Changed {
                        section: Section::Messages,
                        name,
                        keys,
                    });
                }
            }
            (None, None) => {}
        }
    }
}

/// A policy's conditions name trusted networks by index into its own
/// rules: compared by the networks' names, so that reordering
/// `[[trusted_network]]`s changes no policy.
fn policy_keys(a: &Policy, ra: &Rules, b: &Policy, rb: &Rules) -> Vec<&'static str> {
    let names = |p: &Policy, r: &Rules| -> Vec<String> {
        p.when
            .networks
            .iter()
            .filter_map(|&i| r.networks.get(i).map(|n| n.name.clone()))
            .collect()
    };
    let (w, v) = (&a.when, &b.when);
    let (s, t) = (&a.set, &b.set);
    keys_of(&[
        ("clients", w.clients != v.clients),
        ("nas_identifiers", w.nas_identifiers != v.nas_identifiers),
        ("users", w.users != v.users),
        ("groups", w.groups != v.groups),
        ("networks", names(a, ra) != names(b, rb)),
        ("mfa", s.mfa != t.mfa),
        ("methods", s.methods != t.methods),
        ("unenrolled", s.unenrolled != t.unenrolled),
        ("fail_mode", s.fail_mode != t.fail_mode),
        ("number_matching", s.number_matching != t.number_matching),
        ("remember", s.remember != t.remember),
        ("language", s.language != t.language),
    ])
}
