//! `[[trusted_network]]`, `[groups]` and `[[policy]]`: who needs which second
//! factor. They validate into [`Rules`], the only input of the policy
//! decision besides the login itself; its defaults (`unenrolled`,
//! `fallback_oath`) come from `[mfa]`.
//!
//! A problem in a named entry is said with the entry's name:
//! `[[policy]] "contractors": networks: no [[trusted_network]] named "ofice"`.

use std::time::Duration;

use serde::Deserialize;

use super::clients::Client;
use super::error::{ConfigError, invalid};
use super::mfa::{Mfa, parse_language_tag};
use super::providers::Provider;
use super::values::{duration_within, parse_network, required_name};
use crate::mfa::Method;
use crate::policy::{
    Conditions, FailMode, MfaRule, Policy, Remember, RememberScope, Rules, Settings,
    TrustedNetwork, Unenrolled,
};

/// Where the upstream's Access-Accept names the user's groups (`[groups]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupsFrom {
    /// "Class", "Filter-Id" or a vendor attribute's dictionary name; it is
    /// looked up in the RADIUS dictionary, not here.
    pub attribute: String,
    /// Only values that start with this are groups, without it; "": every
    /// value.
    pub prefix: String,
}

/// How long `remember_for` may be.
const REMEMBER_MIN: Duration = Duration::from_secs(60);
const REMEMBER_MAX: Duration = Duration::from_secs(90 * 86400);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrustedNetwork {
    name: Option<String>,
    #[serde(default)]
    ranges: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroups {
    from_attribute: Option<String>,
    #[serde(default)]
    prefix: String,
}

/// The condition lists are `Option`s so that an empty list, which would
/// match every login, can be told from a key left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    name: Option<String>,
    clients: Option<Vec<String>>,
    nas_identifiers: Option<Vec<String>>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    networks: Option<Vec<String>>,
    mfa: Option<String>,
    methods: Option<Vec<String>>,
    unenrolled: Option<String>,
    fail_mode: Option<String>,
    number_matching: Option<bool>,
    remember: Option<String>,
    remember_for: Option<String>,
    language: Option<String>,
}

/// What policies refer to, validated before them.
pub(super) struct Known<'a> {
    pub(super) clients: &'a [Client],
    pub(super) providers: &'a [Provider],
    pub(super) mfa: &'a Mfa,
}

/// One named entry of an array of tables, for its errors.
struct Entry<'a> {
    table: &'static str,
    name: &'a str,
}

impl Entry<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::InEntry {
            table: self.table,
            name: self.name.to_owned(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// `[groups]`.
pub(super) fn validate_groups(raw: RawGroups) -> Result<GroupsFrom, ConfigError> {
    let attribute = match raw.from_attribute {
        Some(a) if !a.trim().is_empty() => a,
        Some(_) => return Err(invalid("groups.from_attribute", "must not be empty")),
        None => {
            return Err(invalid(
                "groups.from_attribute",
                "missing: the attribute of the Access-Accept that names groups, e.g. \"Class\" or \"Filter-Id\"",
            ));
        }
    };
    Ok(GroupsFrom {
        attribute,
        prefix: raw.prefix,
    })
}

/// `[[trusted_network]]` and `[[policy]]`, with the defaults of `[mfa]`.
pub(super) fn validate(
    networks: Vec<RawTrustedNetwork>,
    policies: Vec<RawPolicy>,
    known: Known<'_>,
    warnings: &mut Vec<String>,
) -> Result<Rules, ConfigError> {
    let networks = validate_networks(networks)?;
    let mut out: Vec<Policy> = Vec::new();
    for (i, raw) in policies.into_iter().enumerate() {
        let key = format!("policy[{i}]");
        let name = required_name(raw.name.clone(), &key)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another policy"),
            ));
        }
        let at = Entry {
            table: "policy",
            name: &name,
        };
        let policy = validate_policy(raw, &at, &networks, &known)?;
        if let Some(all) = out.iter().find(|o| o.when.is_empty()) {
            warnings.push(format!(
                "{key} (\"{name}\") never applies: policy \"{}\" before it has no condition, so it matches every login first",
                all.name
            ));
        }
        warn_policy(&policy, &key, warnings);
        out.push(policy);
    }
    Ok(Rules {
        networks,
        policies: out,
        unenrolled: known.mfa.unenrolled,
        fallback_oath: known.mfa.fallback_oath,
    })
}

fn validate_networks(raw: Vec<RawTrustedNetwork>) -> Result<Vec<TrustedNetwork>, ConfigError> {
    let mut out: Vec<TrustedNetwork> = Vec::new();
    for (i, n) in raw.into_iter().enumerate() {
        let key = format!("trusted_network[{i}]");
        let name = required_name(n.name, &key)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another trusted network"),
            ));
        }
        let at = Entry {
            table: "trusted_network",
            name: &name,
        };
        if n.ranges.is_empty() {
            return Err(at.err(
                "ranges",
                "missing: at least one address or CIDR range, e.g. [\"10.1.0.0/16\", \"2001:db8:1::/48\"]",
            ));
        }
        let ranges = n
            .ranges
            .iter()
            .enumerate()
            .map(|(j, r)| parse_network(r).map_err(|p| at.err(format!("ranges[{j}]"), p)))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(TrustedNetwork { name, ranges });
    }
    Ok(out)
}

fn validate_policy(
    p: RawPolicy,
    at: &Entry<'_>,
    networks: &[TrustedNetwork],
    known: &Known<'_>,
) -> Result<Policy, ConfigError> {
    let clients = condition(at, "clients", p.clients)?;
    for c in &clients {
        if !known.clients.iter().any(|k| &k.name == c) {
            return Err(at.err("clients", format!("no [[client]] named \"{c}\"")));
        }
    }
    let network_names = condition(at, "networks", p.networks)?;
    let mut network_indexes = Vec::with_capacity(network_names.len());
    for n in &network_names {
        let index = networks
            .iter()
            .position(|k| &k.name == n)
            .ok_or_else(|| at.err("networks", format!("no [[trusted_network]] named \"{n}\"")))?;
        network_indexes.push(index);
    }
    let when = Conditions {
        clients,
        nas_identifiers: condition(at, "nas_identifiers", p.nas_identifiers)?,
        users: condition(at, "users", p.users)?,
        groups: condition(at, "groups", p.groups)?,
        networks: network_indexes,
    };
    let mfa = p
        .mfa
        .map(|m| {
            one_of(
                at,
                "mfa",
                &m,
                &[
                    ("required", MfaRule::Required),
                    ("skip", MfaRule::Skip),
                    ("deny", MfaRule::Deny),
                ],
            )
        })
        .transpose()?;
    let unenrolled = p
        .unenrolled
        .map(|u| {
            one_of(
                at,
                "unenrolled",
                &u,
                &[
                    ("accept", Unenrolled::Accept),
                    ("reject", Unenrolled::Reject),
                ],
            )
        })
        .transpose()?;
    let fail_mode = p
        .fail_mode
        .map(|f| {
            one_of(
                at,
                "fail_mode",
                &f,
                &[
                    ("fail_open", FailMode::Open),
                    ("fail_closed", FailMode::Closed),
                ],
            )
        })
        .transpose()?;
    let set = Settings {
        mfa,
        methods: p
            .methods
            .map(|m| methods(at, m, known.providers))
            .transpose()?,
        unenrolled,
        fail_mode,
        number_matching: p.number_matching,
        remember: remember(at, p.remember, p.remember_for)?,
        language: p
            .language
            .map(|l| language(at, &l, known.mfa))
            .transpose()?,
    };
    Ok(Policy {
        name: at.name.to_owned(),
        when,
        set,
    })
}

/// Settings that do nothing, and policies an administrator should know
/// the weakness of.
fn warn_policy(p: &Policy, key: &str, warnings: &mut Vec<String>) {
    let name = &p.name;
    let set = &p.set;
    if let Some(m @ (MfaRule::Skip | MfaRule::Deny)) = set.mfa {
        let idle: Vec<&str> = [
            ("methods", set.methods.is_some()),
            ("unenrolled", set.unenrolled.is_some()),
            ("fail_mode", set.fail_mode.is_some()),
            ("number_matching", set.number_matching.is_some()),
            ("remember", set.remember.is_some()),
            ("language", set.language.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect();
        if !idle.is_empty() {
            let word = if m == MfaRule::Skip { "skip" } else { "deny" };
            warnings.push(format!(
                "{key} (\"{name}\"): with mfa = \"{word}\" no second factor runs, so {} does nothing",
                idle.join(", ")
            ));
        }
    }
    if *set == Settings::default() {
        warnings.push(format!(
            "{key} (\"{name}\") sets nothing: the logins it matches get the defaults, and no policy after it applies to them"
        ));
    }
    if set.fail_mode == Some(FailMode::Open) {
        warnings.push(format!(
            "{key} (\"{name}\"): fail_mode = \"fail_open\": when no provider can be reached, logins under this policy need the first factor only"
        ));
    }
    let w = &p.when;
    if set.mfa == Some(MfaRule::Skip)
        && !w.nas_identifiers.is_empty()
        && w.clients.is_empty()
        && w.networks.is_empty()
    {
        warnings.push(format!(
            "{key} (\"{name}\"): skips the second factor on NAS-Identifier alone, which any [[client]] can send: add clients = [...]"
        ));
    }
}

/// A condition's list: left out, no condition; given, at least one item
/// (an empty list would match every login), none empty.
fn condition(
    at: &Entry<'_>,
    key: &str,
    list: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        return Err(at.err(
            key,
            "is an empty list, which would match every login: name at least one, or leave the key out",
        ));
    }
    if let Some(j) = list.iter().position(|s| s.trim().is_empty()) {
        return Err(at.err(format!("{key}[{j}]"), "must not be empty"));
    }
    Ok(list)
}

/// A word from a fixed set.
fn one_of<T: Copy>(
    at: &Entry<'_>,
    key: &str,
    value: &str,
    words: &[(&str, T)],
) -> Result<T, ConfigError> {
    words
        .iter()
        .find(|(w, _)| *w == value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let all: Vec<String> = words.iter().map(|(w, _)| format!("\"{w}\"")).collect();
            at.err(key, format!("\"{value}\" is not one of {}", all.join(", ")))
        })
}

/// `methods`: in order of preference, each once, and each out-of-band one
/// delivered by some `[[provider]]`.
fn methods(
    at: &Entry<'_>,
    raw: Vec<String>,
    providers: &[Provider],
) -> Result<Vec<Method>, ConfigError> {
    if raw.is_empty() {
        return Err(at.err(
            "methods",
            "is an empty list: name at least one of \"totp\", \"push\", \"call\", \"sms\", or leave the key out for all",
        ));
    }
    let mut out: Vec<Method> = Vec::with_capacity(raw.len());
    for (j, m) in raw.iter().enumerate() {
        let key = format!("methods[{j}]");
        let method = Method::parse(m).ok_or_else(|| {
            at.err(
                &key,
                format!("\"{m}\" is not one of \"totp\", \"push\", \"call\", \"sms\""),
            )
        })?;
        if out.contains(&method) {
            return Err(at.err(&key, format!("\"{m}\" is listed twice")));
        }
        if method != Method::Totp && !providers.iter().any(|p| p.methods.contains(&method)) {
            return Err(at.err(
                &key,
                format!("\"{m}\" is delivered by no [[provider]]: add it to a provider's methods, or remove it here"),
            ));
        }
        out.push(method);
    }
    Ok(out)
}

/// `remember` and `remember_for`: "off" is `Some(None)`; a scope needs a
/// duration, and only a scope takes one.
fn remember(
    at: &Entry<'_>,
    scope: Option<String>,
    duration: Option<String>,
) -> Result<Option<Option<Remember>>, ConfigError> {
    let scope = scope
        .map(|s| {
            one_of(
                at,
                "remember",
                &s,
                &[
                    ("user", Some(RememberScope::User)),
                    ("ip", Some(RememberScope::Ip)),
                    ("app", Some(RememberScope::App)),
                    ("off", None),
                ],
            )
        })
        .transpose()?;
    match (scope, duration) {
        (None, None) => Ok(None),
        (Some(None), None) => Ok(Some(None)),
        (None, Some(_)) => Err(at.err(
            "remember_for",
            "is set without remember: give remember = \"user\", \"ip\" or \"app\" too",
        )),
        (Some(None), Some(_)) => Err(at.err(
            "remember_for",
            "is set with remember = \"off\", which remembers nothing: leave it out",
        )),
        (Some(Some(scope)), None) => Err(at.err(
            "remember_for",
            format!(
                "missing: remember = \"{}\" needs how long, between 1m and 90d, e.g. \"8h\"",
                scope.as_str()
            ),
        )),
        (Some(Some(scope)), Some(d)) => {
            let duration = duration_within(&d, Duration::ZERO, Duration::MAX)
                .map_err(|p| at.err("remember_for", p))?;
            if !(REMEMBER_MIN..=REMEMBER_MAX).contains(&duration) {
                return Err(at.err("remember_for", format!("\"{d}\" is outside 1m..=90d")));
            }
            Ok(Some(Some(Remember { scope, duration })))
        }
    }
}

/// `language`: the default language or one of `[messages.LANG]`.
fn language(at: &Entry<'_>, raw: &str, mfa: &Mfa) -> Result<String, ConfigError> {
    let tag = parse_language_tag(raw).ok_or_else(|| {
        at.err(
            "language",
            format!("\"{raw}\" is not a language tag such as \"en\", \"de\" or \"pt-br\""),
        )
    })?;
    if tag != mfa.language && !mfa.languages.contains_key(&tag) {
        return Err(at.err(
            "language",
            format!(
                "\"{raw}\" has no [messages.{tag}] texts, and the default language is \"{}\"",
                mfa.language
            ),
        ));
    }
    Ok(tag)
}
