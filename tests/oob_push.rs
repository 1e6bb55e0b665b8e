//! Out-of-band verification end to end: radclient (the NAS, retransmitting
//! every second) → mfa-proxy → FreeRADIUS (the first factor), with a
//! provider simulator that receives the signed webhook and plays the phone
//! by script, answering on the callback URL.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::provider::*;
use common::*;
use mfa_proxy::engine::{Counter, sign};
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::store::{SeedKey, SqliteStore, Store, User};

fn login(to: SocketAddr, user: &str, password: &str, args: &[&str]) -> String {
    pap(to, user, password, None, args)
}

#[test]
fn push_held_through_retransmissions_busy_for_a_new_login_and_callbacks_checked() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let sim = ProviderSim::start(HashMap::from([
        (
            "alice",
            Script::After(Duration::from_secs(5), r#"{"result":"approved"}"#),
        ),
        ("bob", Script::Fail),
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
    let base = format!("http://{}", proxy.http_addr.expect("http"));
    assert_eq!(http("GET", &format!("{base}/healthz"), "", None).0, 200);

    // Alice's NAS retransmits every second while the push takes 5 s.
    let started = Instant::now();
    let nas = std::thread::spawn(move || {
        login(to, "alice", "alice-pass", &["-x", "-t", "1", "-r", "12"])
    });
    // Meanwhile a genuinely new login for alice: refused at once.
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let busy = login(to, "alice", "alice-pass", &["-x", "-t", "3", "-r", "1"]);
    assert!(busy.contains("Received Access-Reject"), "{busy}");
    assert!(busy.contains("already in progress"), "{busy}");
    assert!(t.elapsed() < Duration::from_secs(2), "BUSY is not delayed");

    let out = nas.join().expect("radclient");
    assert!(
        out.contains("Received Access-Accept"),
        "{out}\n{}",
        fr.log()
    );
    assert!(
        out.contains("tunnel-secret"),
        "the upstream's attributes: {out}"
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    let pushes = sim.to("alice");
    assert_eq!(
        pushes.len(),
        1,
        "exactly one push for all the retransmissions"
    );
    let stats = proxy.stats();
    assert!(stats.get(Counter::DropDuplicateInFlight) >= 3, "{stats}");
    assert_eq!(stats.get(Counter::MfaBusy), 1, "{stats}");
    assert_eq!(
        fr.logins_ok("alice"),
        2,
        "two first factors: the held login and the refused one"
    );

    // The callback is single use; a forged one is refused.
    let url = pushes[0]["callback_url"].as_str().expect("url").to_owned();
    let body = r#"{"result":"approved"}"#;
    assert_eq!(
        post(
            &url,
            body,
            Some(&sign(PROVIDER_KEY.as_bytes(), body.as_bytes()))
        ),
        404
    );

    // Bob's provider refuses: fail closed.
    let out = login(to, "bob", "bob-pass", &["-x", "-t", "10", "-r", "1"]);
    assert!(out.contains("Received Access-Reject"), "{out}");

    // The NAS gave up early and tries again: in without a new push, once.
    let out = login(to, "alice", "alice-pass", &["-x", "-t", "3", "-r", "1"]);
    assert!(out.contains("Received Access-Accept"), "busy_grace: {out}");
    assert_eq!(sim.to("alice").len(), 1);

    // Grace used up: a new push. While it is pending, a forged or malformed
    // callback changes nothing.
    let nas =
        std::thread::spawn(move || login(to, "alice", "alice-pass", &["-x", "-t", "2", "-r", "6"]));
    let url = sim.wait_for("alice", 2, Duration::from_secs(4))["callback_url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(post(&url, body, Some("sha256=0011")), 401);
    assert_eq!(post(&url, body, None), 401);
    let bad = r#"{"result":"perhaps"}"#;
    assert_eq!(
        post(
            &url,
            bad,
            Some(&sign(PROVIDER_KEY.as_bytes(), bad.as_bytes()))
        ),
        400
    );
    let out = nas.join().expect("radclient");
    assert!(out.contains("Received Access-Accept"), "{out}");

    std::thread::sleep(Duration::from_millis(300));
    let audit = store.audit(None, None).expect("audit");
    let results: Vec<(String, ResultCode, bool)> = audit
        .iter()
        .map(|a| (a.user.clone(), a.result, a.accepted))
        .collect();
    assert!(
        results.contains(&(
            "alice".into(),
            ResultCode::SuccessPhoneAppAuthenticated,
            true
        )),
        "{results:?}"
    );
    assert!(
        results.contains(&("alice".into(), ResultCode::FailedPhoneBusy, false)),
        "{results:?}"
    );
    assert!(
        results.contains(&(
            "bob".into(),
            ResultCode::FailedPhoneAppNotificationFailed,
            false
        )),
        "{results:?}"
    );
    assert!(
        results.contains(&("alice".into(), ResultCode::SuccessUsedCache, true)),
        "{results:?}"
    );
    assert_eq!(results.len(), 5, "one record per login: {results:?}");

    let (status, metrics) = http("GET", &format!("{base}/metrics"), "", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mfa_proxy_logins_total{result=\"SUCCESS_PHONE_APP_AUTHENTICATED\",decision=\"accept\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_pending_verifications 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_drops_total{side=\"nas\",reason=\"duplicate_in_flight\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_upstream_rtt_seconds_count{upstream=\"up0\"}"),
        "{metrics}"
    );
}
