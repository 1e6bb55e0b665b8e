//! `[[trusted_network]]`, `[groups]` and `[[policy]]`: what they parse into,
//! and that each problem names its table and key.

use std::time::Duration;

use super::tests::{GOOD, expect_err, load};
use super::*;
use crate::mfa::Method;
use crate::policy::{
    Conditions, MfaRule, Policy, Remember, RememberScope, Rules, Settings, TrustedNetwork,
};

/// GOOD with a provider of push and SMS, German texts and `extra`.
fn with(extra: &str) -> String {
    format!(
        "{GOOD}
[messages.de]
prompt = \"Code eingeben\"

[[provider]]
name = \"console\"
type = \"console\"
methods = [\"push\", \"sms\"]

{extra}"
    )
}

/// `with` one policy named "p" whose body is `body`.
fn policy(body: &str) -> String {
    with(&format!("[[policy]]\nname = \"p\"\n{body}\n"))
}

const FULL: &str = r#"
[[trusted_network]]
name = "office"
ranges = ["10.1.0.0/16", "2001:db8:1::/48"]

[[trusted_network]]
name = "lab"
ranges = ["192.0.2.7", "2001:db8::7", "::ffff:198.51.100.1"]

[groups]
from_attribute = "Class"
prefix = "grp:"

[[policy]]
name = "office-skip"
networks = ["office"]
mfa = "skip"

[[policy]]
name = "contractors"
clients = ["vpn"]
nas_identifiers = ["asa-1"]
users = ["Alice"]
groups = ["contractors"]
networks = ["lab", "office"]
mfa = "required"
methods = ["push", "totp"]
unenrolled = "reject"
fail_mode = "fail_open"
number_matching = true
remember = "ip"
remember_for = "8h"
language = "DE"

[[policy]]
name = "everyone-else"
remember = "off"
"#;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("net")
}

#[test]
fn a_full_example_parses_into_the_rules() {
    let text = with(&format!(
        "[mfa]\nunenrolled = \"accept\"\nfallback_oath = false\n{FULL}"
    ))
    .replace(
        "secret = \"a-long-shared-secret-xyz\"",
        "secret = \"a-long-shared-secret-xyz\"\nuser_address_from = \"Calling-Station-Id\"",
    );
    let c = load(&text).expect("valid");
    let want = Rules {
        networks: vec![
            TrustedNetwork {
                name: "office".into(),
                ranges: vec![net("10.1.0.0/16"), net("2001:db8:1::/48")],
            },
            TrustedNetwork {
                name: "lab".into(),
                ranges: vec![
                    net("192.0.2.7/32"),
                    net("2001:db8::7/128"),
                    net("198.51.100.1/32"),
                ],
            },
        ],
        policies: vec![
            Policy {
                name: "office-skip".into(),
                when: Conditions {
                    networks: vec![0],
                    ..Conditions::default()
                },
                set: Settings {
                    mfa: Some(MfaRule::Skip),
                    ..Settings::default()
                },
            },
            Policy {
                name: "contractors".into(),
                when: Conditions {
                    clients: vec!["vpn".into()],
                    nas_identifiers: vec!["asa-1".into()],
                    users: vec!["Alice".into()],
                    groups: vec!["contractors".into()],
                    networks: vec![1, 0],
                },
                set: Settings {
                    mfa: Some(MfaRule::Required),
                    methods: Some(vec![Method::Push, Method::Totp]),
                    unenrolled: Some(Unenrolled::Reject),
                    fail_mode: Some(FailMode::Open),
                    number_matching: Some(true),
                    remember: Some(Some(Remember {
                        scope: RememberScope::Ip,
                        duration: Duration::from_secs(8 * 3600),
                    })),
                    language: Some("de".into()),
                },
            },
            Policy {
                name: "everyone-else".into(),
                when: Conditions::default(),
                set: Settings {
                    remember: Some(None),
                    ..Settings::default()
                },
            },
        ],
        unenrolled: Unenrolled::Accept,
        fallback_oath: false,
    };
    assert_eq!(c.rules, want);
    assert_eq!(
        c.groups,
        Some(GroupsFrom {
            attribute: "Class".into(),
            prefix: "grp:".into(),
        })
    );
    assert_eq!(
        c.clients[0].user_address_from,
        Some(UserAddressFrom::CallingStationId)
    );
    // Addresses in the ranges, IPv6 and IPv4-mapped ones included.
    let lab = &c.rules.networks[1];
    for ip in [
        "192.0.2.7",
        "2001:db8::7",
        "::ffff:192.0.2.7",
        "198.51.100.1",
    ] {
        assert!(lab.contains(ip.parse().expect("ip")), "{ip}");
    }
    assert!(!lab.contains("192.0.2.8".parse().expect("ip")));
    assert!(c.rules.networks[0].contains("2001:db8:1:ffff::1".parse().expect("ip")));
}

#[test]
fn without_the_new_tables_the_rules_are_the_mfa_defaults() {
    let c = load(GOOD).expect("valid");
    assert_eq!(c.rules, Rules::default());
    assert_eq!(c.groups, None);
    assert_eq!(c.clients[0].user_address_from, None);
    let c = load(&format!("{GOOD}\n[mfa]\nunenrolled = \"accept\"\n")).expect("valid");
    assert_eq!(c.rules.unenrolled, Unenrolled::Accept);
    assert!(c.rules.fallback_oath);
}

#[test]
fn the_networks_error_says_which_policy_and_which_name() {
    let text = with(
        "[[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\"]\n\
         [[policy]]\nname = \"contractors\"\nnetworks = [\"office\", \"ofice\"]\n",
    );
    let e = load(&text).expect_err("unknown network").to_string();
    assert_eq!(
        e,
        "[[policy]] \"contractors\": networks: no [[trusted_network]] named \"ofice\""
    );
}

#[test]
fn trusted_network_errors_name_the_key() {
    let tn = |body: &str| with(&format!("[[trusted_network]]\n{body}\n"));
    let office = "[[trusted_network]] \"office\"";
    expect_err(
        &tn("ranges = [\"10.0.0.0/8\"]"),
        "trusted_network[0].name",
        "missing",
    );
    expect_err(
        &tn("name = \" \"\nranges = [\"10.0.0.0/8\"]"),
        "trusted_network[0].name",
        "must not be empty",
    );
    expect_err(
        &tn(
            "name = \"office\"\nranges = [\"10.0.0.0/8\"]\n[[trusted_network]]\nname = \"office\"\nranges = [\"10.0.0.0/8\"]",
        ),
        "trusted_network[1].name",
        "\"office\" is used by another trusted network",
    );
    expect_err(
        &tn("name = \"office\""),
        &format!("{office}: ranges"),
        "at least one",
    );
    expect_err(
        &tn("name = \"office\"\nranges = []"),
        &format!("{office}: ranges"),
        "at least one",
    );
    expect_err(
        &tn("name = \"office\"\nranges = [\"10.0.0.0/8\", \"office.example\"]"),
        &format!("{office}: ranges[1]"),
        "not an IP address or CIDR range",
    );
    expect_err(
        &tn("name = \"office\"\nranges = [\"10.1.2.3/16\"]"),
        &format!("{office}: ranges[0]"),
        "host bits set; did you mean \"10.1.0.0/16\"",
    );
    expect_err(
        &tn("name = \"office\"\nranges = [\"2001:db8:1::1/48\"]"),
        &format!("{office}: ranges[0]"),
        "did you mean \"2001:db8:1::/48\"",
    );
    expect_err(
        &tn("name = \"office\"\nranges = [\"10.0.0.0/8\"]\nrange = [\"10.0.0.0/8\"]"),
        "test.toml, line",
        "unknown field `range`",
    );
}

#[test]
fn many_trusted_networks() {
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
            "[[trusted_network]]\nname = \"n{i}\"\nranges = [\"10.{}.{}.0/24\"]\n",
            i / 256,
            i % 256
        ));
    }
    let c = load(&with(&text)).expect("valid");
    assert_eq!(c.rules.networks.len(), 300);
}

#[test]
fn policy_errors_name_the_policy_and_the_key() {
    let p = "[[policy]] \"p\"";
    let at = |key: &str| format!("{p}: {key}");
    expect_err(
        &with("[[policy]]\nmfa = \"skip\"\n"),
        "policy[0].name",
        "missing",
    );
    expect_err(
        &with("[[policy]]\nname = \"\"\n"),
        "policy[0].name",
        "must not be empty",
    );
    expect_err(
        &with("[[policy]]\nname = \"p\"\n[[policy]]\nname = \"p\"\n"),
        "policy[1].name",
        "\"p\" is used by another policy",
    );
    expect_err(
        &policy("clients = [\"vpm\"]"),
        &at("clients"),
        "no [[client]] named \"vpm\"",
    );
    expect_err(
        &policy("mfa = \"optional\""),
        &at("mfa"),
        "\"optional\" is not one of \"required\", \"skip\", \"deny\"",
    );
    expect_err(
        &policy("users = []"),
        &at("users"),
        "empty list, which would match every login",
    );
    expect_err(
        &policy("users = [\"alice\", \"\"]"),
        &at("users[1]"),
        "must not be empty",
    );
    expect_err(
        &policy("groups = [\" \"]"),
        &at("groups[0]"),
        "must not be empty",
    );
    expect_err(
        &policy("nas_identifiers = [\"\"]"),
        &at("nas_identifiers[0]"),
        "must not be empty",
    );
    expect_err(&policy("networks = []"), &at("networks"), "empty list");
    expect_err(&policy("methods = []"), &at("methods"), "empty list");
    expect_err(
        &policy("methods = [\"push\", \"fax\"]"),
        &at("methods[1]"),
        "\"fax\" is not one of \"totp\", \"push\", \"call\", \"sms\"",
    );
    expect_err(
        &policy("methods = [\"push\", \"totp\", \"push\"]"),
        &at("methods[2]"),
        "\"push\" is listed twice",
    );
    expect_err(
        &policy("methods = [\"totp\", \"call\"]"),
        &at("methods[1]"),
        "\"call\" is delivered by no [[provider]]",
    );
    expect_err(
        &policy("unenrolled = \"allow\""),
        &at("unenrolled"),
        "not one of \"accept\", \"reject\"",
    );
    expect_err(
        &policy("fail_mode = \"open\""),
        &at("fail_mode"),
        "\"open\" is not one of \"fail_open\", \"fail_closed\"",
    );
    expect_err(
        &policy("language = \"d e\""),
        &at("language"),
        "not a language tag",
    );
    expect_err(
        &policy("language = \"fr\""),
        &at("language"),
        "no [messages.fr] texts, and the default language is \"en\"",
    );
    expect_err(
        &policy("number_matching = \"yes\""),
        "test.toml, line",
        "expected a boolean",
    );
    expect_err(
        &policy("remember_four = \"8h\""),
        "test.toml, line",
        "unknown field `remember_four`",
    );
}

#[test]
fn remember_and_remember_for() {
    let p = "[[policy]] \"p\"";
    let at = |key: &str| format!("{p}: {key}");
    expect_err(
        &policy("remember = \"device\"\nremember_for = \"8h\""),
        &at("remember"),
        "\"device\" is not one of \"user\", \"ip\", \"app\", \"off\"",
    );
    expect_err(
        &policy("remember = \"user\""),
        &at("remember_for"),
        "missing: remember = \"user\" needs how long",
    );
    expect_err(
        &policy("remember = \"off\"\nremember_for = \"8h\""),
        &at("remember_for"),
        "remember = \"off\"",
    );
    expect_err(
        &policy("remember_for = \"8h\""),
        &at("remember_for"),
        "set without remember",
    );
    expect_err(
        &policy("remember = \"app\"\nremember_for = \"8 fortnights\""),
        &at("remember_for"),
        "not a duration",
    );
    expect_err(
        &policy("remember = \"app\"\nremember_for = \"59s\""),
        &at("remember_for"),
        "\"59s\" is outside 1m..=90d",
    );
    expect_err(
        &policy("remember = \"app\"\nremember_for = \"91d\""),
        &at("remember_for"),
        "\"91d\" is outside 1m..=90d",
    );
    for (scope, d, want) in [
        ("user", "1m", RememberScope::User),
        ("app", "90d", RememberScope::App),
    ] {
        let c = load(&policy(&format!(
            "remember = \"{scope}\"\nremember_for = \"{d}\""
        )))
        .expect("valid");
        let r = c.rules.policies[0].set.remember.expect("set").expect("on");
        assert_eq!(r.scope, want);
        assert_eq!(
            r.duration,
            humantime::parse_duration(d).expect("duration"),
            "{d}"
        );
    }
}

#[test]
fn a_policy_after_one_without_conditions_is_named_in_a_warning() {
    let c = load(&with(
        "[[policy]]\nname = \"all\"\nmfa = \"required\"\n\
         [[policy]]\nname = \"later\"\nusers = [\"bob\"]\nmfa = \"skip\"\n",
    ))
    .expect("valid");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("policy[1] (\"later\") never applies") && w.contains("\"all\"")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn groups_errors_name_the_key() {
    expect_err(
        &with("[groups]\nprefix = \"grp:\"\n"),
        "groups.from_attribute",
        "missing",
    );
    expect_err(
        &with("[groups]\nfrom_attribute = \"\"\n"),
        "groups.from_attribute",
        "must not be empty",
    );
    let c = load(&with("[groups]\nfrom_attribute = \"Filter-Id\"\n")).expect("valid");
    assert_eq!(
        c.groups,
        Some(GroupsFrom {
            attribute: "Filter-Id".into(),
            prefix: String::new(),
        })
    );
}

/// Uncommented, the examples of the shipped file are valid: the policy
/// tables at its end, `user_address_from`, and the `[messages.de]` that
/// `language = "de"` needs.
#[test]
fn the_shipped_policy_examples_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml");
    let text = std::fs::read_to_string(&path).expect("read proxy.toml");
    let is_toml = |l: &str| {
        l.starts_with('[')
            || l.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    let mut in_messages = false;
    let mut in_policies = false;
    let mut out = Vec::new();
    for line in text.lines() {
        in_policies |= line.starts_with("# Policies:");
        in_messages = (in_messages && !line.is_empty()) || line == "# [messages.de]";
        let uncomment = in_policies || in_messages || line.starts_with("# user_address_from = ");
        match line.strip_prefix("# ") {
            Some(l) if uncomment && is_toml(l) => out.push(l),
            _ => out.push(line),
        }
    }
    let c = Config::from_toml(&out.join("\n"), &path).expect("the uncommented examples load");
    assert_eq!(c.rules.networks.len(), 1);
    let names: Vec<&str> = c.rules.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["office-skip", "contractors"]);
    let contractors = &c.rules.policies[1];
    assert_eq!(contractors.when.clients, ["vpn"]);
    assert_eq!(contractors.set.language.as_deref(), Some("de"));
    assert!(c.groups.is_some());
    assert_eq!(
        c.clients[0].user_address_from,
        Some(UserAddressFrom::CallingStationId)
    );
}

#[test]
fn settings_that_do_nothing_and_weak_policies_are_warned_of() {
    let c = load(&with(
        "[[policy]]\nname = \"kiosk\"\nnas_identifiers = [\"kiosk-1\"]\nmfa = \"skip\"\nmethods = [\"totp\"]\n\
         [[policy]]\nname = \"lax\"\nusers = [\"bob\"]\nfail_mode = \"fail_open\"\n\
         [[policy]]\nname = \"idle\"\nusers = [\"carol\"]\n",
    ))
    .expect("valid");
    let w = c.warnings.join("\n");
    assert!(
        w.contains(
            "(\"kiosk\"): with mfa = \"skip\" no second factor runs, so methods does nothing"
        ),
        "{w}"
    );
    assert!(
        w.contains("(\"kiosk\"): skips the second factor on NAS-Identifier alone"),
        "{w}"
    );
    assert!(w.contains("(\"lax\"): fail_mode = \"fail_open\""), "{w}");
    assert!(w.contains("(\"idle\") sets nothing"), "{w}");
}
