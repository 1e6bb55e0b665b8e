//! `mfa-proxy policy explain`: which policy a login would match, why, and
//! what it would need — computed by the same `policy::decide` the proxy
//! runs, on the store's facts about the user, without logging in.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{AdminError, invalid};
use crate::config::Config;
use crate::policy::{self, AuthType, ClientDefaults, Live, Need, Plan, Standing, Start};
use crate::store::{Store, UserFacts};

/// The login to explain.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub user: String,
    /// A `[[client]]` name.
    pub client: String,
    /// The address trusted networks test: the user's own when the client
    /// takes it from an attribute, else the NAS's.
    pub ip: Option<IpAddr>,
    /// Groups as the upstream's Access-Accept would name them.
    pub groups: Vec<String>,
    pub nas_identifier: Option<String>,
    /// The Calling-Station-Id, the client address of `ip`-scope remembered
    /// logins when the client has no `user_address_from` (with one, `ip`).
    pub calling_station_id: Option<String>,
    /// `pap`, `chap`, `mschap` or `eap`.
    pub auth: Option<String>,
}

fn auth_type(s: Option<&str>) -> Result<AuthType, AdminError> {
    Ok(match s.unwrap_or("pap") {
        "pap" => AuthType::Pap,
        "chap" => AuthType::Chap,
        "mschap" => AuthType::MsChap,
        "eap" => AuthType::Eap,
        other => {
            return Err(invalid(format!(
                "--auth: \"{other}\" is not one of pap, chap, mschap, eap"
            )));
        }
    })
}

/// The user's standing as the store has it at `now`.
pub fn standing(store: &dyn Store, user: &str, now: i64) -> Result<Standing, AdminError> {
    let facts = crate::store::in_tx(store.as_login(), |tx| tx.facts(user, now))?;
    Ok(UserFacts::split(facts).0)
}

/// The explanation, as lines of text.
pub fn explain(
    config: &Config,
    q: &Query,
    standing: &Standing,
    now: i64,
) -> Result<String, AdminError> {
    let client = config
        .clients
        .iter()
        .find(|c| c.name == q.client)
        .ok_or_else(|| {
            let names: Vec<_> = config.clients.iter().map(|c| c.name.as_str()).collect();
            invalid(format!(
                "--client: no [[client]] named \"{}\" (there are: {})",
                q.client,
                names.join(", ")
            ))
        })?;
    // As the engine does: with user_address_from, the user's address is
    // also the remembered logins' client address; without, the NAS's
    // source is tested against networks and Calling-Station-Id is remembered.
    let client_ip = match client.user_address_from {
        Some(_) => q.ip.map(|a| a.to_string()),
        None => q.calling_station_id.clone(),
    };
    let request = policy::Request {
        user: &q.user,
        client: &client.name,
        client_defaults: ClientDefaults {
            fail_mode: client.fail_mode,
            number_matching: client.number_matching,
        },
        nas_identifier: q.nas_identifier.as_deref(),
        address: q.ip.map(|a| a.to_canonical()),
        client_ip: client_ip.as_deref(),
        auth_type: auth_type(q.auth.as_deref())?,
        inline_code: false,
        groups: &q.groups,
    };
    let mut o = String::new();
    let from = match (q.ip, client.user_address_from) {
        (Some(ip), Some(attr)) => format!("user address {ip} (from {})", attr.attribute()),
        (Some(ip), None) => format!("NAS address {ip}"),
        (None, Some(attr)) => format!(
            "no user address (the client takes it from {})",
            attr.attribute()
        ),
        (None, None) => "no address given (--ip)".into(),
    };
    let _ = writeln!(o, "login: user {}, client {}, {from}", q.user, client.name);
    let mut groups: Vec<String> = standing
        .groups
        .iter()
        .map(|g| format!("{g} (store)"))
        .collect();
    groups.extend(q.groups.iter().map(|g| format!("{g} (upstream)")));
    let _ = writeln!(
        o,
        "user: {}; groups: {}",
        describe_user(standing),
        if groups.is_empty() {
            "none".into()
        } else {
            groups.join(", ")
        }
    );
    let (hit, traces) = policy::matching(&config.rules, &request, standing);
    if config.rules.policies.is_empty() {
        let _ = writeln!(o, "no [[policy]] is configured");
    }
    for t in &traces {
        match &t.outcome {
            Ok(held) if held.is_empty() => {
                let _ = writeln!(o, "policy {}: matches (it has no condition)", t.policy);
            }
            Ok(held) => {
                let _ = writeln!(o, "policy {}: matches: {}", t.policy, held.join(", "));
            }
            Err(why) => {
                let _ = writeln!(o, "policy {}: no match: {why}", t.policy);
            }
        }
    }
    let skipped = config.rules.policies.len() - traces.len();
    if skipped > 0 {
        let _ = writeln!(
            o,
            "({skipped} later policies are not reached: the first match wins)"
        );
    }
    match hit {
        Some(i) => {
            let _ = writeln!(o, "applies: policy {}", config.rules.policies[i].name);
        }
        None => {
            let _ = writeln!(
                o,
                "applies: no policy; the defaults of [mfa] and the client"
            );
        }
    }
    let live = Live {
        now,
        ..Live::default()
    };
    let decision = policy::decide(&config.rules, &request, standing, live);
    let _ = writeln!(o, "needs: {}", need(&decision.need));
    Ok(o)
}

fn describe_user(s: &Standing) -> String {
    if !s.known {
        return "not in the store".into();
    }
    let mut v = vec![format!("method {}", s.method.as_str())];
    if s.oath {
        v.push("an app or token".into());
    }
    if s.phone {
        v.push("a phone number".into());
    }
    for (flag, what) in [
        (s.blocked, "BLOCKED"),
        (s.locked, "LOCKED OUT"),
        (s.bypass_waiting, "a one-time bypass waiting"),
    ] {
        if flag {
            v.push(what.into());
        }
    }
    if !s.remembered.is_empty() {
        v.push(format!("{} remembered login(s)", s.remembered.len()));
    }
    v.join(", ")
}

fn need(n: &Need) -> String {
    match n {
        Need::Accept { result, reason } => {
            format!("no second factor: accepted as {result} ({reason})")
        }
        Need::Reject { result, reason, .. } => format!("rejected as {result} ({reason})"),
        Need::ClaimBypass => {
            "no second factor: the waiting one-time bypass would be used (SUCCESS_BYPASSED_AUTH)"
                .into()
        }
        Need::ClaimGrace => {
            "no second factor: verified out of band moments ago from this client (SUCCESS_USED_CACHE)"
                .into()
        }
        Need::SecondFactor(p) => plan(p),
    }
}

fn plan(p: &Plan) -> String {
    let how = match p.start {
        Start::InlineCode => "the code typed after the password",
        Start::Prompt => "a code asked by Access-Challenge",
        Start::OutOfBand => "out of band",
    };
    let mut s = format!("a second factor: {} ({how})", p.method.as_str());
    if let Some(a) = &p.allowed {
        let names: Vec<_> = a.iter().map(|m| m.as_str()).collect();
        let _ = write!(s, "; allowed methods: {}", names.join(", "));
    }
    let _ = write!(
        s,
        "; fallback to an app code: {}; number matching: {}; fail mode: {}",
        if p.fallback_oath { "yes" } else { "no" },
        if p.number_matching { "yes" } else { "no" },
        match p.fail_mode {
            policy::FailMode::Open => "fail_open",
            policy::FailMode::Closed => "fail_closed",
        }
    );
    match p.remember {
        Some(r) => {
            let _ = write!(
                s,
                "; once verified, remembered (scope {}) for {}",
                r.scope.as_str(),
                humantime::format_duration(r.duration)
            );
        }
        None => s.push_str("; not remembered"),
    }
    if let Some(l) = &p.language {
        let _ = write!(s, "; language {l}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        let t = "[server]\nname = \"t\"\nauth_listen = [\"127.0.0.1:1812\"]\n\
                 [[client]]\nname = \"vpn\"\naddress = \"10.0.0.0/8\"\nsecret = \"0123456789abcdef\"\nuser_address_from = \"Calling-Station-Id\"\n\
                 [[upstream]]\nname = \"nps\"\naddress = \"10.0.0.5:1812\"\nsecret = \"0123456789abcdef\"\n\
                 [[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\"]\n\
                 [[policy]]\nname = \"office-skip\"\nnetworks = [\"office\"]\nmfa = \"skip\"\n\
                 [[policy]]\nname = \"contractors\"\ngroups = [\"contractors\"]\nremember = \"ip\"\nremember_for = \"8h\"\n";
        Config::from_toml(t, Path::new("t.toml")).expect("valid")
    }

    fn query(ip: &str, groups: &[&str]) -> Query {
        Query {
            user: "alice".into(),
            client: "vpn".into(),
            ip: Some(ip.parse().expect("ip")),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Query::default()
        }
    }

    #[test]
    fn explains_the_match_and_the_need() {
        let c = config();
        let alice = Standing {
            known: true,
            oath: true,
            ..Standing::unknown()
        };
        let o = explain(&c, &query("10.1.2.3", &[]), &alice, 0).expect("explained");
        assert!(
            o.contains("policy office-skip: matches: address 10.1.2.3 in trusted network office"),
            "{o}"
        );
        assert!(o.contains("(1 later policies are not reached"), "{o}");
        assert!(
            o.contains("needs: no second factor: accepted as SUCCESS_SKIPPED_BY_POLICY"),
            "{o}"
        );
        let o = explain(&c, &query("192.0.2.1", &["contractors"]), &alice, 0).expect("explained");
        assert!(
            o.contains(
                "policy office-skip: no match: address 192.0.2.1 is in none of the networks"
            ),
            "{o}"
        );
        assert!(o.contains("applies: policy contractors"), "{o}");
        assert!(
            o.contains("needs: a second factor: totp (a code asked by Access-Challenge)"),
            "{o}"
        );
        assert!(o.contains("remembered (scope ip) for 8h"), "{o}");
        let bad = Query {
            client: "nope".into(),
            ..query("10.1.2.3", &[])
        };
        let e = explain(&c, &bad, &alice, 0).expect_err("unknown client");
        assert!(
            e.to_string()
                .contains("no [[client]] named \"nope\" (there are: vpn)"),
            "{e}"
        );
    }
}
