//! Values every section parses the same way: names, bounded numbers,
//! durations, address ranges, paths and secrets.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::error::{ConfigError, invalid};
use crate::secret::Secret;

/// Reads an environment variable (a parameter, so tests need not set one).
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The three ways to give a secret; exactly one must be used.
pub(super) struct RawSecret {
    /// What the keys are called: "secret" (secret, secret_file,
    /// secret_env) or "key" (key, key_file, key_env).
    pub(super) field: &'static str,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_env: Option<String>,
}

pub(super) fn required_name(name: Option<String>, key: &str) -> Result<String, ConfigError> {
    match name {
        Some(n) if !n.trim().is_empty() => Ok(n),
        Some(_) => Err(invalid(format!("{key}.name"), "must not be empty")),
        None => Err(invalid(
            format!("{key}.name"),
            "missing: every entry needs a name for logs",
        )),
    }
}

pub(super) fn bounded(v: u64, key: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(key, format!("{v} is outside {min}..={max}")))
    }
}

/// Parses `"30s"`, `"1500ms"`, `"2m"` and checks the bounds.
pub fn parse_duration(
    s: &str,
    key: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    duration_within(s, min, max).map_err(|problem| invalid(key, problem))
}

/// [`parse_duration`] for a caller that names the key itself: the problem
/// alone.
pub(super) fn duration_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        format!("\"{s}\" is not a duration; write a number and a unit, e.g. \"30s\" or \"500ms\"")
    })?;
    if d < min || d > max {
        return Err(format!(
            "{} is outside {}..={}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

pub(super) fn parse_network(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = s.parse().map_err(|_| {
        format!("\"{s}\" is not an IP address or CIDR range, e.g. \"10.0.0.1\" or \"10.0.0.0/24\"")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "\"{s}\" has host bits set; did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(canonical(net))
}

/// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it
/// is: addresses are compared in canonical form, so it would never match.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

pub(super) fn resolve_secret(
    raw: RawSecret,
    key: &str,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<Secret, ConfigError> {
    let field = raw.field;
    let secret = match (raw.secret, raw.secret_file, raw.secret_env) {
        (Some(s), None, None) => Secret::new(s.into_bytes()),
        (None, Some(f), None) => {
            let path = if f.is_absolute() { f } else { base.join(f) };
            let text = std::fs::read(&path).map_err(|e| {
                invalid(
                    format!("{key}.{field}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let trimmed = text
                .strip_suffix(b"\r\n")
                .or_else(|| text.strip_suffix(b"\n"))
                .unwrap_or(&text);
            Secret::new(trimmed.to_vec())
        }
        (None, None, Some(var)) => {
            let v = env(&var).ok_or_else(|| {
                invalid(
                    format!("{key}.{field}_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            Secret::new(v.into_bytes())
        }
        (None, None, None) => {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("missing: give {field}, {field}_file or {field}_env"),
            ));
        }
        _ => {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("give exactly one of {field}, {field}_file, {field}_env"),
            ));
        }
    };
    if secret.is_empty() {
        return Err(invalid(format!("{key}.{field}"), "must not be empty"));
    }
    Ok(secret)
}

/// A path as written, relative to the configuration file's directory.
pub(super) fn resolve_path(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_ranges_are_ipv4_ranges() {
        assert_eq!(
            parse_network("::ffff:10.0.0.0/104")
                .expect("valid")
                .to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network("::ffff:10.1.2.3").expect("valid").to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_network("2001:db8::/32").expect("valid").to_string(),
            "2001:db8::/32"
        );
        assert!(
            parse_network("10.1.2.3/16")
                .expect_err("host bits")
                .contains("10.1.0.0/16")
        );
    }
}
