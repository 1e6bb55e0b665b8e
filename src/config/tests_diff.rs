//! The reload difference: one test per kind of change, on configurations
//! that differ in that one respect.

use super::diff::{Change, Section, diff, in_force};
use super::tests::load;
use super::*;

const BASE: &str = r#"
[server]
name = "t"
auth_listen = ["127.0.0.1:1812"]
acct_listen = ["127.0.0.1:1813"]
public_url = "https://mfa.example"

[[client]]
name = "vpn"
address = "10.1.0.0/16"
secret = "a-long-shared-secret-xyz"

[[client]]
name = "wifi"
address = "10.2.0.0/16"
secret = "another-long-shared-secret"

[[upstream]]
name = "nps1"
address = "10.0.0.5:1812"
secret = "upstream-secret-is-long"

[[upstream]]
name = "nps2"
address = "10.0.0.6:1812"
secret = "upstream-secret-is-long"

[[provider]]
name = "gw"
type = "webhook"
methods = ["push"]
url = "https://gw.example/v"
key = "provider-key-0123456789"

[[trusted_network]]
name = "office"
ranges = ["10.1.0.0/16"]

[[trusted_network]]
name = "lab"
ranges = ["10.3.0.0/16"]

[[policy]]
name = "office-skip"
networks = ["office"]
mfa = "skip"

[[policy]]
name = "contractors"
users = ["carol"]
methods = ["push"]
"#;

fn base() -> Config {
    load(BASE).expect("base config")
}

/// The changes from the base to the base with `from` replaced by `to`.
fn changed(from: &str, to: &str) -> Vec<Change> {
    assert!(BASE.contains(from), "{from}");
    diff(&base(), &load(&BASE.replacen(from, to, 1)).expect("valid"))
}

/// The changes from the base to the base followed by `extra`.
fn added(extra: &str) -> Vec<Change> {
    diff(&base(), &load(&format!("{BASE}\n{extra}")).expect("valid"))
}

fn change(section: Section, name: &str, keys: &[&'static str]) -> Change {
    Change::Changed {
        section,
        name: name.into(),
        keys: keys.to_vec(),
    }
}

#[test]
fn the_same_file_is_no_change() {
    assert_eq!(diff(&base(), &base()), vec![]);
}

#[test]
fn clients_added_removed_and_changed_by_name() {
    let c = added(
        "[[client]]\nname = \"guest\"\naddress = \"10.9.0.0/16\"\nsecret = \"guest-secret-0123456789\"\n",
    );
    assert_eq!(
        c,
        vec![Change::Added {
            section: Section::Client,
            name: "guest".into()
        }]
    );
    let c = changed(
        "[[client]]\nname = \"wifi\"\naddress = \"10.2.0.0/16\"\nsecret = \"another-long-shared-secret\"\n",
        "",
    );
    assert_eq!(
        c,
        vec![Change::Removed {
            section: Section::Client,
            name: "wifi".into()
        }]
    );
    let c = changed(
        "secret = \"a-long-shared-secret-xyz\"",
        "secret = \"a-new-shared-secret-xyz\"\nfail_mode = \"fail_open\"",
    );
    assert_eq!(
        c,
        vec![change(Section::Client, "vpn", &["secret", "fail_mode"])]
    );
    let shown = c[0].to_string();
    assert_eq!(shown, "[[client]] \"vpn\" changed: secret, fail_mode");
    assert!(!shown.contains("a-new") && !format!("{c:?}").contains("a-new"));
}

#[test]
fn client_order_does_not_matter() {
    let vpn = "[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\nsecret = \"a-long-shared-secret-xyz\"\n";
    let moved = BASE.replacen(vpn, "", 1) + vpn;
    assert_eq!(diff(&base(), &load(&moved).expect("valid")), vec![]);
}

#[test]
fn upstreams_changed_and_reordered() {
    let c = changed(
        "address = \"10.0.0.6:1812\"",
        "address = \"10.0.0.7:1812\"\ntimeout = \"1s\"",
    );
    assert_eq!(
        c,
        vec![change(Section::Upstream, "nps2", &["address", "timeout"])]
    );
    let nps1 = "[[upstream]]\nname = \"nps1\"\naddress = \"10.0.0.5:1812\"\nsecret = \"upstream-secret-is-long\"\n";
    let swapped =
        BASE.replacen(nps1, "", 1)
            .replacen("[[provider]]", &format!("{nps1}\n[[provider]]"), 1);
    let c = diff(&base(), &load(&swapped).expect("valid"));
    assert_eq!(
        c,
        vec![Change::Reordered {
            section: Section::Upstream
        }]
    );
    assert_eq!(c[0].to_string(), "[[upstream]] reordered");
}

#[test]
fn listeners_added_and_removed_by_address() {
    let c = changed(
        "auth_listen = [\"127.0.0.1:1812\"]",
        "auth_listen = [\"127.0.0.1:1812\", \"[::1]:1812\"]",
    );
    assert_eq!(
        c,
        vec![Change::Added {
            section: Section::AuthListener,
            name: "[::1]:1812".into()
        }]
    );
    assert_eq!(c[0].to_string(), "auth listener [::1]:1812 added");
    let c = changed("acct_listen = [\"127.0.0.1:1813\"]", "");
    assert_eq!(
        c,
        vec![Change::Removed {
            section: Section::AcctListener,
            name: "127.0.0.1:1813".into()
        }]
    );
}

#[test]
fn http_keys_public_url_live_listener_needs_restart() {
    let c = changed(
        "public_url = \"https://mfa.example\"",
        "public_url = \"https://mfa2.example\"\nhttp_listen = \"127.0.0.1:8080\"\nhttp_max_connections = 100",
    );
    assert_eq!(
        c,
        vec![
            Change::NeedsRestart {
                key: "server.http_listen"
            },
            Change::NeedsRestart {
                key: "server.http_max_connections"
            },
            change(Section::Server, "", &["public_url"]),
        ]
    );
    assert!(!c[0].is_live() && c[2].is_live());
    assert_eq!(
        c[0].to_string(),
        "server.http_listen changed: it takes effect after a restart"
    );
}

#[test]
fn restart_only_keys() {
    let c = changed("name = \"t\"", "name = \"t2\"\ndictionary = \"dictionary\"");
    assert_eq!(
        c,
        vec![
            Change::NeedsRestart { key: "server.name" },
            Change::NeedsRestart {
                key: "server.dictionary"
            },
        ]
    );
    let c = added("[store]\npath = \"/var/lib/other.db\"\nkey_file = \"/var/lib/other.key\"\n");
    assert_eq!(
        c,
        vec![
            Change::NeedsRestart { key: "store.path" },
            Change::NeedsRestart {
                key: "store.key_file"
            },
        ]
    );
    let c = added("[primary]\nmode = \"local\"\n");
    assert_eq!(
        c,
        vec![Change::NeedsRestart {
            key: "primary.mode"
        }]
    );
    let c = added("[mfa]\nenabled = false\n");
    assert_eq!(c, vec![Change::NeedsRestart { key: "mfa.enabled" }]);
}

#[test]
fn in_force_keeps_what_needs_a_restart_and_takes_the_rest() {
    let new = load(&format!(
        "{}\n[store]\npath = \"/elsewhere.db\"\n[primary]\nmode = \"local\"\n[mfa]\nenabled = true\nmax_attempts = 5\n",
        BASE.replacen("name = \"t\"", "name = \"t2\"", 1)
    ))
    .expect("valid");
    let old = base();
    let c = in_force(&old, &new);
    assert_eq!(c.server.name, "t");
    assert_eq!(c.store.path, old.store.path);
    assert_eq!(c.primary, Primary::Upstream);
    assert_eq!(c.mfa.max_attempts, 5, "the rest is taken");
    assert!(
        diff(&old, &c).iter().all(Change::is_live),
        "{:?}",
        diff(&old, &c)
    );
}

#[test]
fn providers_changed_added_and_reordered() {
    let c = changed(
        "key = \"provider-key-0123456789\"",
        "key = \"provider-key-9876543210\"\nretries = 0",
    );
    assert_eq!(
        c,
        vec![change(Section::Provider, "gw", &["key", "retries"])]
    );
    let c = added("[[provider]]\nname = \"log\"\ntype = \"console\"\nmethods = [\"sms\"]\n");
    assert_eq!(
        c,
        vec![Change::Added {
            section: Section::Provider,
            name: "log".into()
        }]
    );
}

#[test]
fn notify_added_then_changed() {
    let notify = "[notify]\nsmtp = \"127.0.0.1:25\"\nfrom = \"mfa@example.org\"\nto = [\"ops@example.org\"]\n";
    assert_eq!(
        added(notify),
        vec![Change::Added {
            section: Section::Notify,
            name: String::new()
        }]
    );
    let old = load(&format!("{BASE}\n{notify}")).expect("valid");
    let new = load(&format!("{BASE}\n{}", notify.replace("ops@", "sec@"))).expect("valid");
    assert_eq!(diff(&old, &new), vec![change(Section::Notify, "", &["to"])]);
}

#[test]
fn policies_changed_and_reordered() {
    let c = changed("mfa = \"skip\"", "mfa = \"deny\"");
    assert_eq!(c, vec![change(Section::Policy, "office-skip", &["mfa"])]);
    assert_eq!(c[0].to_string(), "[[policy]] \"office-skip\" changed: mfa");
    let first = "[[policy]]\nname = \"office-skip\"\nnetworks = [\"office\"]\nmfa = \"skip\"\n";
    let moved = BASE.replacen(first, "", 1) + first;
    assert_eq!(
        diff(&base(), &load(&moved).expect("valid")),
        vec![Change::Reordered {
            section: Section::Policy
        }]
    );
    let c = added("[[policy]]\nname = \"late\"\nusers = [\"dave\"]\nmfa = \"deny\"\n");
    assert_eq!(
        c,
        vec![Change::Added {
            section: Section::Policy,
            name: "late".into()
        }]
    );
}

#[test]
fn trusted_networks_changed_and_their_order_changes_no_policy() {
    let c = changed("ranges = [\"10.1.0.0/16\"]", "ranges = [\"10.1.0.0/24\"]");
    assert_eq!(
        c,
        vec![change(Section::TrustedNetwork, "office", &["ranges"])]
    );
    // The policy refers to "office" by index: moving it changes the index,
    // not the policy.
    let office = "[[trusted_network]]\nname = \"office\"\nranges = [\"10.1.0.0/16\"]\n";
    let moved =
        BASE.replacen(office, "", 1)
            .replacen("[[policy]]", &format!("{office}\n[[policy]]"), 1);
    assert_eq!(diff(&base(), &load(&moved).expect("valid")), vec![]);
}

#[test]
fn groups_added_and_changed() {
    let groups = "[groups]\nfrom_attribute = \"Class\"\nprefix = \"grp:\"\n";
    assert_eq!(
        added(groups),
        vec![Change::Added {
            section: Section::Groups,
            name: String::new()
        }]
    );
    let old = load(&format!("{BASE}\n{groups}")).expect("valid");
    let new = load(&format!("{BASE}\n{}", groups.replace("grp:", "g-"))).expect("valid");
    assert_eq!(
        diff(&old, &new),
        vec![change(Section::Groups, "", &["prefix"])]
    );
}

#[test]
fn mfa_settings_and_texts() {
    let c = added("[mfa]\nmax_attempts = 5\nprompt = \"Code?\"\nfraud_code = \"9\"\n");
    assert_eq!(
        c,
        vec![change(
            Section::Mfa,
            "",
            &["max_attempts", "fraud_code", "prompt"]
        )]
    );
    assert_eq!(
        c[0].to_string(),
        "[mfa] changed: max_attempts, fraud_code, prompt"
    );
}

#[test]
fn messages_by_language() {
    let de = "[messages.de]\nprompt = \"Code eingeben\"\n";
    assert_eq!(
        added(de),
        vec![Change::Added {
            section: Section::Messages,
            name: "de".into()
        }]
    );
    let old = load(&format!("{BASE}\n{de}")).expect("valid");
    let new = load(&format!("{BASE}\n{}", de.replace("eingeben", "bitte"))).expect("valid");
    let c = diff(&old, &new);
    assert_eq!(c, vec![change(Section::Messages, "de", &["prompt"])]);
    assert_eq!(c[0].to_string(), "[messages.de] changed: prompt");
}

#[test]
fn lockout_keys() {
    assert_eq!(
        added("[lockout]\ndenials = 3\n"),
        vec![change(Section::Lockout, "", &["denials"])]
    );
}

#[test]
fn proxy_keys() {
    assert_eq!(
        added("[proxy]\nselection = \"round-robin\"\nupstream_sockets = 2\n"),
        vec![change(
            Section::Proxy,
            "",
            &["selection", "upstream_sockets"]
        )]
    );
}
