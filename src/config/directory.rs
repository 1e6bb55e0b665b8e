//! `[[directory]]`: LDAP directories (Active Directory, OpenLDAP) that
//! users are synced from.
//!
//! Each source says how to reach the directory (`url`, `starttls`,
//! `ca_file`, `bind_dn` and the bind password from `bind_password`,
//! `bind_password_file` or `bind_password_env`), which entries are users
//! (`base_dn`, `filter` and optionally `group`, nested groups included),
//! how their attributes map to ours (`name_attribute` is required; an
//! attribute mapping left out means the directory does not own that field,
//! so what an administrator set by hand stays), what new users get
//! (`default_method`, `default_language`, `invite`), and when it runs
//! (`interval`, `remove_after`, `page_size`, `timeout`). A change to a
//! source takes effect at its next sync.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::mfa::parse_language_tag;
use super::values::{
    EnvLookup, RawSecret, bounded, parse_duration, required_name, resolve_path, resolve_secret,
};
use crate::mfa::Method;
use crate::secret::Secret;

/// How the connection to the directory is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryTls {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` with `starttls = true`: upgraded before the bind.
    StartTls,
    /// `ldap://` alone: the bind password crosses the network in clear (a
    /// warning says so).
    None,
}

/// One `[[directory]]` source.
#[derive(Clone, Debug)]
pub struct Directory {
    pub name: String,
    /// `ldap://host[:port]` or `ldaps://host[:port]`, as written.
    pub url: String,
    pub host: String,
    /// The port, or the scheme's default (389, 636).
    pub port: u16,
    pub tls: DirectoryTls,
    /// The server certificate is checked against this CA (PEM) instead of
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    /// Never printed: masked in `Debug`, left out of the summary and of
    /// every error.
    pub bind_password: Secret,
    pub base_dn: String,
    /// An RFC 4515 filter, parentheses included.
    pub filter: String,
    /// Only members of this group (nested groups count).
    pub group: Option<String>,
    /// The login name: `sAMAccountName`, `userPrincipalName`, `uid` or
    /// another attribute.
    pub name_attribute: String,
    /// The attributes feeding email, phone, language and groups; `None`:
    /// the directory does not own the field.
    pub email_attribute: Option<String>,
    pub phone_attribute: Option<String>,
    pub language_attribute: Option<String>,
    pub groups_attribute: Option<String>,
    /// The method of a user the sync adds.
    pub default_method: Method,
    /// The language of a user the sync adds when the directory gives none;
    /// `None`: `[mfa] language`.
    pub default_language: Option<String>,
    /// Whether users the sync adds are sent an enrollment invitation.
    pub invite: bool,
    pub interval: Duration,
    /// Users gone from the directory (or its scope) are disabled at once
    /// and removed after this.
    pub remove_after: Duration,
    /// A sync that would disable more than this percentage of the
    /// source's users (more than ten), or all of them, changes nothing
    /// unless forced: what a wrong filter or an emptied group looks like.
    pub max_disable: u32,
    /// Entries per page of a paged search (AD serves at most 1,000).
    pub page_size: u32,
    /// Bound on connecting and on each LDAP operation.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    name: Option<String>,
    url: Option<String>,
    #[serde(default)]
    starttls: bool,
    ca_file: Option<PathBuf>,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    bind_password_file: Option<PathBuf>,
    bind_password_env: Option<String>,
    base_dn: Option<String>,
    filter: Option<String>,
    group: Option<String>,
    name_attribute: Option<String>,
    email_attribute: Option<String>,
    phone_attribute: Option<String>,
    language_attribute: Option<String>,
    groups_attribute: Option<String>,
    default_method: Option<String>,
    default_language: Option<String>,
    #[serde(default)]
    invite: bool,
    interval: Option<String>,
    remove_after: Option<String>,
    max_disable: Option<String>,
    page_size: Option<u64>,
    timeout: Option<String>,
}

const INTERVAL_MIN: Duration = Duration::from_secs(60);
const INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
const D_INTERVAL: &str = "15m";
const REMOVE_AFTER_MIN: Duration = Duration::from_secs(3600);
const REMOVE_AFTER_MAX: Duration = Duration::from_secs(10 * 365 * 86_400);
const D_REMOVE_AFTER: &str = "30d";
const D_PAGE_SIZE: u64 = 500;
const D_MAX_DISABLE: &str = "20%";
const D_TIMEOUT: &str = "30s";

/// The `[[directory]]` tables, in file order.
pub(super) fn validate(
    raw: Vec<RawDirectory>,
    base: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Directory>, ConfigError> {
    let mut out: Vec<Directory> = Vec::new();
    for (i, d) in raw.into_iter().enumerate() {
        let key = format!("directory[{i}]");
        let name = required_name(d.name, &key)?;
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("\"{name}\" is used by another directory"),
            ));
        }
        let url = d.url.ok_or_else(|| {
            invalid(
                format!("{key}.url"),
                "missing, e.g. \"ldaps://dc1.corp.example:636\"",
            )
        })?;
        let (ldaps, host, port) =
            parse_url(&url).map_err(|problem| invalid(format!("{key}.url"), problem))?;
        let tls = match (ldaps, d.starttls) {
            (true, false) => DirectoryTls::Ldaps,
            (true, true) => {
                return Err(invalid(
                    format!("{key}.starttls"),
                    "is for ldap:// URLs; ldaps:// is TLS from the start",
                ));
            }
            (false, true) => DirectoryTls::StartTls,
            (false, false) => {
                warnings.push(format!("{key} (\"{name}\"): {url} is plain LDAP without starttls; the bind password and users' data cross the network unencrypted"));
                DirectoryTls::None
            }
        };
        let ca_file = match d.ca_file {
            Some(_) if tls == DirectoryTls::None => {
                return Err(invalid(
                    format!("{key}.ca_file"),
                    "is for ldaps:// or starttls = true; plain ldap:// checks no certificate",
                ));
            }
            Some(f) => Some(ca_file(resolve_path(base, f), &key)?),
            None => None,
        };
        let bind_dn = dn(d.bind_dn, &key, "bind_dn")?
            .ok_or_else(|| invalid(format!("{key}.bind_dn"), "missing: the account to bind as, e.g. \"CN=mfa-sync,OU=Service,DC=corp,DC=example\""))?;
        let bind_password = resolve_secret(
            RawSecret {
                field: "bind_password",
                secret: d.bind_password,
                secret_file: d.bind_password_file,
                secret_env: d.bind_password_env,
            },
            &key,
            base,
            env,
        )?;
        let base_dn = dn(d.base_dn, &key, "base_dn")?.ok_or_else(|| {
            invalid(
                format!("{key}.base_dn"),
                "missing: where users are searched, e.g. \"DC=corp,DC=example\"",
            )
        })?;
        let filter = d.filter.ok_or_else(|| {
            invalid(
                format!("{key}.filter"),
                "missing: which entries are users, e.g. \"(&(objectClass=user)(mail=*))\"",
            )
        })?;
        check_filter(&filter).map_err(|problem| invalid(format!("{key}.filter"), problem))?;
        let group = dn(d.group, &key, "group")?;
        let name_attribute = attribute(d.name_attribute, &key, "name_attribute")?.ok_or_else(|| {
            invalid(
                format!("{key}.name_attribute"),
                "missing: the login name's attribute, e.g. \"sAMAccountName\", \"userPrincipalName\" or \"uid\"",
            )
        })?;
        let email_attribute = attribute(d.email_attribute, &key, "email_attribute")?;
        let phone_attribute = attribute(d.phone_attribute, &key, "phone_attribute")?;
        let language_attribute = attribute(d.language_attribute, &key, "language_attribute")?;
        let groups_attribute = attribute(d.groups_attribute, &key, "groups_attribute")?;
        let default_method = match d.default_method.as_deref() {
            None => Method::Totp,
            Some(m) => Method::parse(m).ok_or_else(|| {
                invalid(
                    format!("{key}.default_method"),
                    format!("\"{m}\" is not one of \"totp\", \"push\", \"call\", \"sms\""),
                )
            })?,
        };
        if matches!(default_method, Method::Call | Method::Sms) && phone_attribute.is_none() {
            warnings.push(format!("{key} (\"{name}\"): default_method is {} but no phone_attribute is set; new users have no phone number until one is added by hand", default_method.as_str()));
        }
        let default_language = d
            .default_language
            .map(|tag| {
                parse_language_tag(&tag).ok_or_else(|| {
                    invalid(
                        format!("{key}.default_language"),
                        format!(
                            "\"{tag}\" is not a language tag such as \"en\", \"de\" or \"pt-br\""
                        ),
                    )
                })
            })
            .transpose()?;
        let interval = parse_duration(
            d.interval.as_deref().unwrap_or(D_INTERVAL),
            &format!("{key}.interval"),
            INTERVAL_MIN,
            INTERVAL_MAX,
        )?;
        let remove_after = parse_duration(
            d.remove_after.as_deref().unwrap_or(D_REMOVE_AFTER),
            &format!("{key}.remove_after"),
            REMOVE_AFTER_MIN,
            REMOVE_AFTER_MAX,
        )?;
        let max_disable = percent(
            d.max_disable.as_deref().unwrap_or(D_MAX_DISABLE),
            &format!("{key}.max_disable"),
        )?;
        let page_size = bounded(
            d.page_size.unwrap_or(D_PAGE_SIZE),
            &format!("{key}.page_size"),
            1,
            10_000,
        )? as u32;
        let timeout = parse_duration(
            d.timeout.as_deref().unwrap_or(D_TIMEOUT),
            &format!("{key}.timeout"),
            Duration::from_secs(1),
            Duration::from_secs(600),
        )?;
        out.push(Directory {
            name,
            url,
            host,
            port,
            tls,
            ca_file,
            bind_dn,
            bind_password,
            base_dn,
            filter,
            group,
            name_attribute,
            email_attribute,
            phone_attribute,
            language_attribute,
            groups_attribute,
            default_method,
            default_language,
            invite: d.invite,
            interval,
            remove_after,
            max_disable,
            page_size,
            timeout,
        });
    }
    Ok(out)
}

/// `"20%"`: a whole percentage from 1 to 100.
fn percent(value: &str, key: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u32>().ok())
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            invalid(
                key,
                format!("\"{value}\" is not a percentage from 1% to 100%, e.g. \"20%\""),
            )
        })
}

#[cfg(test)]
impl Directory {
    /// The source of issue 17's example (`corp`, every mapping set, the
    /// group scope), for tests of what a sync does with it.
    pub(crate) fn example() -> Directory {
        Directory {
            name: "corp".into(),
            url: "ldaps://dc1.corp.example:636".into(),
            host: "dc1.corp.example".into(),
            port: 636,
            tls: DirectoryTls::Ldaps,
            ca_file: None,
            bind_dn: "CN=mfa-sync,OU=Service,DC=corp,DC=example".into(),
            bind_password: Secret::new(b"secret".to_vec()),
            base_dn: "DC=corp,DC=example".into(),
            filter: "(objectClass=user)".into(),
            group: Some("CN=VPN Users,OU=Groups,DC=corp,DC=example".into()),
            name_attribute: "sAMAccountName".into(),
            email_attribute: Some("mail".into()),
            phone_attribute: Some("mobile".into()),
            language_attribute: Some("preferredLanguage".into()),
            groups_attribute: Some("memberOf".into()),
            default_method: Method::Totp,
            default_language: None,
            invite: false,
            interval: Duration::from_secs(900),
            remove_after: Duration::from_secs(30 * 86_400),
            max_disable: 20,
            page_size: 500,
            timeout: Duration::from_secs(30),
        }
    }
}

/// `ldap[s]://host[:port][/]`: (whether ldaps, host, port). IPv6 hosts in
/// brackets. No path, query or credentials: the base DN and the bind have
/// their own keys.
fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (ldaps, rest) = if let Some(r) = url.strip_prefix("ldaps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ldap://") {
        (false, r)
    } else {
        return Err(format!(
            "\"{url}\" is not an ldap:// or ldaps:// URL, e.g. \"ldaps://dc1.corp.example:636\""
        ));
    };
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.contains(['/', '?', '@', ' ']) {
        return Err(format!(
            "\"{url}\" has more than a host and port; the base DN goes in base_dn, the account in bind_dn"
        ));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{url}\": an IPv6 address needs its closing ]"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    let port = match port {
        None => {
            if ldaps {
                636
            } else {
                389
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("\"{url}\": \"{p}\" is not a port")),
        },
    };
    Ok((ldaps, host.to_owned(), port))
}

/// A DN-valued key: absent, or `attr=value[,...]` (not parsed further: the
/// server judges it).
fn dn(value: Option<String>, key: &str, field: &str) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => {
            Err(invalid(format!("{key}.{field}"), "must not be empty"))
        }
        Some(v) if !v.contains('=') => Err(invalid(
            format!("{key}.{field}"),
            format!("\"{v}\" is not a DN such as \"OU=Users,DC=corp,DC=example\""),
        )),
        Some(v) => Ok(Some(v.trim().to_owned())),
    }
}

/// An attribute description: a name (a letter, then letters, digits and
/// hyphens) or a numeric OID.
fn attribute(value: Option<String>, key: &str, field: &str) -> Result<Option<String>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    let name = v.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = !v.is_empty()
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if name || oid {
        Ok(Some(v))
    } else {
        Err(invalid(
            format!("{key}.{field}"),
            format!("\"{v}\" is not an attribute name such as \"mail\" or \"sAMAccountName\""),
        ))
    }
}

/// An RFC 4515 filter in its parentheses, balanced (literal parentheses in
/// a value are escaped as \28 and \29, so counting is exact).
fn check_filter(filter: &str) -> Result<(), String> {
    let f = filter.trim();
    if !(f.starts_with('(') && f.ends_with(')')) {
        return Err(format!(
            "\"{filter}\" is not an LDAP filter in parentheses, e.g. \"(objectClass=user)\""
        ));
    }
    let mut depth = 0usize;
    for (i, c) in f.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("\"{filter}\": a ) at {i} closes nothing"))?;
                if depth == 0 && i + 1 != f.len() {
                    return Err(format!(
                        "\"{filter}\": text after the filter's closing ); combine filters with (&...)"
                    ));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("\"{filter}\": unbalanced parentheses"));
    }
    Ok(())
}

/// Reads the CA file once at load, so that a missing or wrong file is a
/// `check` error rather than a failed sync.
fn ca_file(path: PathBuf, key: &str) -> Result<PathBuf, ConfigError> {
    let text = std::fs::read_to_string(&path).map_err(|e| {
        invalid(
            format!("{key}.ca_file"),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid(
            format!("{key}.ca_file"),
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(path)
}
