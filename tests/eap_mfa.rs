//! PEAP with a second factor, from outside: eapol_test (the supplicant and
//! the NAS) → mfa-proxy → FreeRADIUS, whose Access-Accept carries the inner
//! identity as User-Name. The anonymous outer identity is not whose push
//! runs: the inner one is. A denied push ends in an Access-Reject with an
//! EAP-Failure (RFC 3579 §2.6.3), so the supplicant is told at once.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::provider::*;
use common::*;
use mfa_proxy::mfa::Method;
use mfa_proxy::store::{SeedKey, SqliteStore, Store, User};

fn eapol_test(to: SocketAddr, identity: &str, password: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("peap.conf");
    std::fs::write(
        &conf,
        format!(
            "network={{\n\tssid=\"test\"\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity=\"{identity}\"\n\tanonymous_identity=\"anonymous\"\n\
             \tpassword=\"{password}\"\n\tphase1=\"peapver=0\"\n\tphase2=\"auth=MSCHAPV2\"\n}}\n"
        ),
    )
    .expect("write conf");
    let o = std::process::Command::new("eapol_test")
        .arg("-c")
        .arg(&conf)
        .args([
            "-a",
            &to.ip().to_string(),
            "-p",
            &to.port().to_string(),
            "-s",
            NAS_SECRET,
            "-r",
            "0",
            "-t",
            "30",
        ])
        .output()
        .expect("run eapol_test");
    text(&o)
}

#[test]
fn peap_push_for_the_inner_identity_and_eap_failure_when_denied() {
    if !(have("freeradius") && have("eapol_test")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let sim = ProviderSim::start(HashMap::from([
        (
            "alice",
            Script::After(Duration::from_secs(1), r#"{"result":"approved"}"#),
        ),
        (
            "bob",
            Script::After(Duration::from_secs(1), r#"{"result":"denied"}"#),
        ),
    ]));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("mfa.db"), SeedKey::from_bytes(&[7; 32]))
            .expect("store"),
    );
    for name in ["alice", "bob"] {
        store
            .add_user(&User {
                phone: Some("+4930123456".into()),
                ..User::new(name, Method::Push)
            })
            .expect("user");
    }
    let http_port = free_port();
    let config = proxy_config(
        &[(fr.auth, fr.acct)],
        &format!(
            "http_listen = \"127.0.0.1:{http_port}\"\npublic_url = \"http://127.0.0.1:{http_port}\"\n\
             [mfa]\nreject_delay = \"100ms\"\npush_timeout = \"20s\"\nfallback_oath = false\n\
             {}",
            sim.config("[\"push\"]")
        ),
    );
    let proxy = start_mfa_proxy(&config, &store);
    let to = proxy.listen_addrs[0];

    // Alice approves: the push went to her, not to "anonymous".
    let out = eapol_test(to, "alice", "alice-pass");
    let tail: String = out.lines().rev().take(25).collect::<Vec<_>>().join("\n");
    assert!(
        out.trim_end().ends_with("SUCCESS"),
        "{tail}\n{:?}\n{}",
        store.audit(None, None),
        fr.log()
    );
    assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "{tail}");
    assert_eq!(sim.to("alice").len(), 1, "alice's push");
    assert!(sim.to("anonymous").is_empty());

    // Bob denies: an Access-Reject carrying EAP-Failure.
    let out = eapol_test(to, "bob", "bob-pass");
    let tail: String = out.lines().rev().take(25).collect::<Vec<_>>().join("\n");
    assert_eq!(sim.to("bob").len(), 1, "bob's push: {tail}");
    assert!(out.contains("Access-Reject"), "{tail}");
    assert!(
        !out.contains("could not extract EAP-Message"),
        "the reject must carry EAP-Failure:\n{tail}"
    );
    assert!(out.contains("EAP-Failure"), "{tail}");
    assert!(out.trim_end().ends_with("FAILURE"), "{tail}");
    let records = store.audit(None, None).expect("audit");
    let mut last: Vec<_> = records
        .iter()
        .map(|a| (a.user.as_str(), a.result.to_string(), a.accepted))
        .collect();
    last.sort();
    assert_eq!(
        last,
        vec![
            ("alice", "SUCCESS_PHONE_APP_AUTHENTICATED".to_owned(), true),
            ("bob", "FAILED_PHONE_APP_DENIED".to_owned(), false),
        ]
    );
}
