//! What `mfa-proxy check` prints: never a secret.

use std::fmt;

use super::{Config, DirectoryTls, Primary, ProviderKind};
use crate::policy::{MfaRule, Policy, Rules};

/// One policy: its conditions, then what it sets.
fn policy_line(p: &Policy, rules: &Rules) -> String {
    let w = &p.when;
    let mut when = Vec::new();
    let mut list = |key: &str, items: &[String]| {
        if !items.is_empty() {
            when.push(format!("{key} {}", items.join("|")));
        }
    };
    list("client", &w.clients);
    list("nas-identifier", &w.nas_identifiers);
    list("user", &w.users);
    list("group", &w.groups);
    let nets: Vec<String> = w
        .networks
        .iter()
        .filter_map(|&i| rules.networks.get(i).map(|n| n.name.clone()))
        .collect();
    list("network", &nets);
    let when = if when.is_empty() {
        "every login".to_owned()
    } else {
        when.join(" and ")
    };
    let s = &p.set;
    let mut set = Vec::new();
    match s.mfa {
        Some(MfaRule::Skip) => set.push("skip the second factor".to_owned()),
        Some(MfaRule::Deny) => set.push("deny".to_owned()),
        Some(MfaRule::Required) => set.push("second factor required".to_owned()),
        None => {}
    }
    if let Some(m) = &s.methods {
        let m: Vec<&str> = m.iter().map(|m| m.as_str()).collect();
        set.push(format!("methods {}", m.join(", ")));
    }
    match s.remember {
        Some(Some(r)) => set.push(format!(
            "remember {} for {}",
            r.scope.as_str(),
            humantime::format_duration(r.duration)
        )),
        Some(None) => set.push("remember off".to_owned()),
        None => {}
    }
    if let Some(u) = s.unenrolled {
        set.push(format!("unenrolled {u:?}").to_lowercase());
    }
    if let Some(fm) = s.fail_mode {
        set.push(format!("fail mode {fm:?}").to_lowercase());
    }
    if let Some(n) = s.number_matching {
        set.push(format!("number matching {}", if n { "on" } else { "off" }));
    }
    if let Some(l) = &s.language {
        set.push(format!("language {l}"));
    }
    if set.is_empty() {
        set.push("the defaults".to_owned());
    }
    format!("when {when}: {}", set.join(", "))
}

/// See [`Config::summary`].
#[derive(Debug)]
pub struct Summary<'a>(pub(super) &'a Config);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(f, "server \"{}\"", c.server.name)?;
        let primary = match &c.primary {
            Primary::Ldap { directory } => {
                format!("ldap (a bind as the user to directory {directory})")
            }
            other => other.mode().to_owned(),
        };
        writeln!(
            f,
            "primary: {primary}, second factor: {}",
            if c.mfa.enabled { "on" } else { "off" }
        )?;
        for a in &c.server.auth_listen {
            writeln!(f, "  listen auth {a}")?;
        }
        for a in &c.server.acct_listen {
            writeln!(f, "  listen acct {a}")?;
        }
        writeln!(
            f,
            "proxy: {:?} selection, when all upstreams are down: {:?}, duplicate window {}",
            c.proxy.selection,
            c.proxy.when_all_down,
            humantime::format_duration(c.proxy.dedup_window)
        )?;
        writeln!(f, "clients ({}):", c.clients.len())?;
        for cl in &c.clients {
            writeln!(
                f,
                "  {:<16} {:<20} message-authenticator {}",
                cl.name,
                cl.network.to_string(),
                if cl.require_message_authenticator {
                    "required"
                } else {
                    "optional"
                }
            )?;
        }
        writeln!(f, "upstreams ({}):", c.upstreams.len())?;
        for u in &c.upstreams {
            let acct = u.acct_address.map_or("-".to_owned(), |a| a.to_string());
            writeln!(
                f,
                "  {:<16} auth {:<22} acct {:<22} timeout {} retries {} health {:?}",
                u.name,
                u.address.to_string(),
                acct,
                humantime::format_duration(u.timeout),
                u.retries,
                u.health_check
            )?;
        }
        if let Some(h) = c.server.http_listen {
            writeln!(
                f,
                "{}: {h} (callbacks at {}/v1/verifications/ID)",
                if c.server.http_tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                c.server.public_url.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(f, "providers ({}):", c.providers.len())?;
        for p in &c.providers {
            let kind = match &p.kind {
                ProviderKind::Webhook { url } => format!("webhook {url}"),
                ProviderKind::Console => "console".to_owned(),
            };
            let methods: Vec<&str> = p.methods.iter().map(|m| m.as_str()).collect();
            writeln!(f, "  {:<16} {kind} [{}]", p.name, methods.join(", "))?;
        }
        if let Some(n) = &c.notify {
            writeln!(f, "fraud email: {} via {}", n.to.join(", "), n.smtp)?;
        }
        if let Some(p) = &c.portal {
            writeln!(
                f,
                "portal: {}/portal/ (sessions end {} after the last page, {} after sign-in; \
                 {} failed sign-ins per user, {} per address, per {})",
                c.server
                    .public_url
                    .as_deref()
                    .unwrap_or("")
                    .trim_end_matches('/'),
                humantime::format_duration(p.session_idle),
                humantime::format_duration(p.session_max),
                p.signin_per_user,
                p.signin_per_address,
                humantime::format_duration(p.signin_window),
            )?;
            if !p.trusted_proxies.is_empty() {
                let proxies: Vec<String> =
                    p.trusted_proxies.iter().map(|n| n.to_string()).collect();
                writeln!(
                    f,
                    "portal: behind proxies {}, client addresses from their X-Forwarded-For",
                    proxies.join(", ")
                )?;
            }
        }
        if let Some(e) = &c.enrollment {
            writeln!(
                f,
                "enrollment mail: from {} via {}{}, links {}/portal/invite/... valid {}",
                e.from,
                e.smtp,
                if e.relay_of_notify { " ([notify])" } else { "" },
                c.server.public_url.as_deref().unwrap_or("-"),
                humantime::format_duration(e.invite_valid)
            )?;
            let dir = match &e.templates_dir {
                Some(d) => format!(
                    ", {} of them from {}",
                    e.templates.overrides().len(),
                    d.display()
                ),
                None => String::new(),
            };
            writeln!(
                f,
                "  templates in {}{dir}",
                e.templates.languages().join(", ")
            )?;
        }
        let rules = &c.rules;
        if !rules.networks.is_empty() {
            writeln!(f, "trusted networks ({}):", rules.networks.len())?;
            for n in &rules.networks {
                let ranges: Vec<String> = n.ranges.iter().map(ToString::to_string).collect();
                writeln!(f, "  {:<16} {}", n.name, ranges.join(", "))?;
            }
        }
        if let Some(g) = &c.groups {
            writeln!(
                f,
                "groups from the upstream's {} (prefix \"{}\")",
                g.attribute, g.prefix
            )?;
        }
        if !c.directories.is_empty() {
            writeln!(f, "directories ({}):", c.directories.len())?;
        }
        for d in &c.directories {
            let tls = match d.tls {
                DirectoryTls::Ldaps => "",
                DirectoryTls::StartTls => " (starttls)",
                DirectoryTls::None => " (unencrypted)",
            };
            let scope = d
                .group
                .as_ref()
                .map_or(String::new(), |g| format!(" in group {g}"));
            writeln!(
                f,
                "  {:<16} {}{tls} as {}: {} under {}{scope}, login {}, every {}",
                d.name,
                d.url,
                d.bind_dn,
                d.filter,
                d.base_dn,
                d.name_attribute,
                humantime::format_duration(d.interval)
            )?;
        }
        writeln!(
            f,
            "policies ({}), the first that matches applies:",
            rules.policies.len()
        )?;
        for p in &rules.policies {
            writeln!(f, "  {:<16} {}", p.name, policy_line(p, rules))?;
        }
        writeln!(f, "  (otherwise)      the defaults of [mfa] and the client")?;
        for w in &c.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
