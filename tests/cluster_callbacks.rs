//! A provider's callback across two proxies on one PostgreSQL database
//! (issue 16). The `public_url` providers call back is usually a load
//! balancer's, so the phone's answer may reach the node that does not hold
//! the NAS request; with number matching, the NAS may also send its answer
//! to the challenge showing the number to the other node. Separate `serve`
//! processes driven by radclient; callbacks signed with the shipped console
//! provider's key, as a gateway would sign them.

#[path = "support/cluster.rs"]
mod cluster;
mod common;
#[path = "support/pg_server.rs"]
mod pg_server;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster::*;
use common::provider::post;
use common::*;
use mfa_proxy::engine::sign;
use mfa_proxy::store::{PgStore, SeedKey, Store};

/// The shipped console provider's callback key.
const KEY: &[u8] = b"trial-console-callback-key-change-me";

/// Adds `bob`, whose method is push, through node A's command line.
fn add_push_user(dir: &Path) {
    let o = run_bin(
        dir,
        &["user", "add", "bob", "--password-stdin"],
        Some("bob-pass\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run_bin(dir, &["user", "set", "bob", "--method", "push"], None);
    assert!(o.status.success(), "{}", text(&o));
}

fn store(c: &Cluster) -> PgStore {
    let key = SeedKey::load(&c.a_dir.path().join("data/seed.key")).expect("key");
    PgStore::connect(&c.url, key, 1).expect("store")
}

/// The id (hex) of bob's verification once node `node` holds it.
fn held_by(store: &PgStore, node: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = store.verifications(now() as i64).expect("list");
        if let Some(v) = pending.iter().find(|v| v.user == "bob" && v.node == node) {
            return v.id.iter().map(|b| format!("{b:02x}")).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{node} holds no verification: {pending:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// POSTs `body` as the provider's callback for `id` to the node whose
/// HTTP port is `http`, signed with `key`; the HTTP status.
fn callback(http: u16, id: &str, body: &str, key: &[u8]) -> u16 {
    let url = format!("http://127.0.0.1:{http}/v1/verifications/{id}");
    post(&url, body, Some(&sign(key, body.as_bytes())))
}

/// bob's audit records: (node, result).
fn records(store: &PgStore) -> Vec<(String, String)> {
    (store.audit(Some("bob"), None).expect("audit").into_iter())
        .map(|r| (r.server, r.result.to_string()))
        .collect()
}

fn event(http: u16, name: &str) -> u64 {
    metric(
        &metrics(http),
        &format!("mfa_proxy_events_total{{event=\"{name}\"}}"),
    )
}

#[test]
fn a_callback_at_b_releases_the_request_held_at_a() {
    let Some(c) = Cluster::new() else { return };
    add_push_user(c.a_dir.path());
    let store = store(&c);
    let _a = serve(c.a_dir.path(), c.a_http);
    let _b = serve(c.b_dir.path(), c.b_http);
    // A holds bob's request while the push is pending (push_timeout 5 s:
    // unanswered, it would end in a reject).
    let a = c.a;
    let held = std::thread::spawn(move || login_as(a, "bob", "bob-pass", None, 10));
    let id = held_by(&store, "node-a");

    // The load balancer sends the phone's answer to B.
    let approve = r#"{"result":"approved"}"#;
    assert_eq!(callback(c.b_http, &id, approve, b"not-the-key"), 401);
    assert_eq!(callback(c.b_http, &id, r#"{"result":"maybe"}"#, KEY), 400);
    assert_eq!(callback(c.b_http, &"ab".repeat(16), approve, KEY), 404);
    assert_eq!(callback(c.b_http, &id, approve, KEY), 200);
    assert_eq!(callback(c.b_http, &id, approve, KEY), 404, "used once");
    let out = held.join().expect("radclient");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert_eq!(
        records(&store),
        [("node-a".into(), "SUCCESS_PHONE_APP_AUTHENTICATED".into())],
        "one record, by the node that answered the NAS"
    );
    assert_eq!(event(c.b_http, "callback_passed"), 1);
    assert_eq!(event(c.a_http, "callback_answers_taken"), 1);
    assert!(store.verifications(now() as i64).expect("list").is_empty());
}

#[test]
fn number_matching_shown_by_a_is_answered_at_b_and_approved_through_a() {
    let Some(c) = Cluster::new() else { return };
    for dir in [c.a_dir.path(), c.b_dir.path()] {
        let path = dir.join("proxy.toml");
        let conf = std::fs::read_to_string(&path).expect("read");
        let on = conf.replacen("number_matching = false", "number_matching = true ", 1);
        assert_ne!(on, conf);
        std::fs::write(&path, on).expect("write");
    }
    add_push_user(c.a_dir.path());
    let store = store(&c);
    let _a = serve(c.a_dir.path(), c.a_http);
    let _b = serve(c.b_dir.path(), c.b_http);
    // A sends the push and shows its number.
    let out = login_as(c.a, "bob", "bob-pass", None, 5);
    assert!(out.contains("Received Access-Challenge"), "{out}");
    let shown = out
        .lines()
        .find(|l| l.contains("Reply-Message"))
        .unwrap_or_else(|| panic!("no Reply-Message: {out}"));
    let number: String = shown.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(number.len(), 2, "{shown}");
    let state = state_from(&out);
    let id = held_by(&store, "node-a");

    // The NAS fails over: its answer to the challenge goes to B, which
    // holds the request from then on.
    let b = c.b;
    let held = std::thread::spawn(move || login_as(b, "bob", "", Some(&state), 10));
    assert_eq!(held_by(&store, "node-b"), id);
    // The phone's answer reaches A.
    let approve = format!(r#"{{"result":"approved","number":{number}}}"#);
    assert_eq!(callback(c.a_http, &id, &approve, KEY), 200);
    let out = held.join().expect("radclient");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert_eq!(event(c.a_http, "callback_passed"), 1);
    assert_eq!(event(c.b_http, "callback_answers_taken"), 1);
    assert_eq!(event(c.b_http, "mfa_challenges_taken_over"), 1);
    assert_eq!(
        records(&store),
        [("node-b".into(), "SUCCESS_PHONE_APP_AUTHENTICATED".into())]
    );
    // A's copy of the challenge runs out (push_timeout, 5 s): A knows B
    // took it, and records nothing.
    let deadline = Instant::now() + Duration::from_secs(15);
    while event(c.a_http, "mfa_challenges_handed_away") == 0 {
        assert!(Instant::now() < deadline, "A never let the challenge go");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(records(&store).len(), 1, "one login, one record");
}
