//! Two proxies on one PostgreSQL database (issue 16): separate processes
//! on separate ports, driven by radclient. The state a login decides on is
//! the database's, so what one node did counts at the other: a code used
//! at A is a duplicate at B, wrong codes at both add up to one lockout, a
//! user added by the administrator is known to both, and every audit
//! record names the node that wrote it.

#[path = "support/cluster.rs"]
mod cluster;
mod common;
#[path = "support/pg_server.rs"]
mod pg_server;

use std::time::{Duration, Instant};

use cluster::*;
use common::*;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::Store;

#[test]
fn two_nodes_share_users_codes_lockout_and_the_audit_trail() {
    let Some(Cluster {
        url: _,
        a_dir,
        b_dir,
        a,
        a_http,
        b,
        b_http,
    }) = Cluster::new()
    else {
        return;
    };
    let o = run_bin(b_dir.path(), &["check"], None);
    let line = text(&o)
        .lines()
        .find(|l| l.starts_with("store: PostgreSQL (pool of 8): reachable, schema "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", text(&o)));
    // "… schema N (this program's: N)": the first node brought it up to date.
    let numbers: Vec<&str> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(numbers[1], numbers[2], "{line}");
    // Users added at one node are the cluster's.
    let o = run_bin(
        a_dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let enroll = run_bin(b_dir.path(), &["totp", "enroll", "alice"], None);
    assert!(enroll.status.success(), "{}", text(&enroll));
    let seed = seed_from_enroll(&String::from_utf8_lossy(&enroll.stdout));
    let code_at = |t: u64| totp_code(&TotpParams::default(), &seed, t);
    let o = run_bin(
        a_dir.path(),
        &["totp", "activate", "alice", &code_at(now())],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));

    let _a = serve(a_dir.path(), a_http);
    let _b = serve(b_dir.path(), b_http);

    // A challenge from A, answered at B (the NAS failed over between the
    // rounds), with the next step's code (the window takes it).
    let out = login(a, "alice-pass", None);
    let state = state_from(&out);
    let code = code_at(now() + 30);
    let out = login(b, &code, Some(&state));
    assert!(out.contains("Received Access-Accept"), "{out}");
    // The code used at B is refused at A: one replay record for the cluster.
    let out = login(a, &format!("alice-pass,{code}"), None);
    assert!(out.contains("Received Access-Reject"), "{out}");

    // Wrong codes at B and at A add up to one lockout (3 denials; the
    // duplicate was the first).
    let bad = wrong(&code_at(now()));
    let out = login(b, &format!("alice-pass,{bad}"), None);
    assert!(out.contains("Received Access-Reject"), "{out}");
    let out = login(a, &format!("alice-pass,{bad}"), None);
    assert!(out.contains("Received Access-Reject"), "{out}");
    // Locked now, at both: even the right code is refused.
    let out = login(b, &format!("alice-pass,{}", code_at(now() + 30)), None);
    assert!(out.contains("Received Access-Reject"), "{out}");

    // The audit trail: every login, each named by the node that decided it.
    let report = run_bin(
        a_dir.path(),
        &["report", "signins", "--user", "alice"],
        None,
    );
    let report = text(&report);
    let results: Vec<&str> = report
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        results,
        [
            "SUCCESS_OATH_CODE_VERIFIED",
            "FAILED_OATH_CODE_DUPLICATE",
            "FAILED_OATH_CODE_INCORRECT",
            // The third wrong code locks; so is the next login, at either node.
            "FAILED_AUTHENTICATION_THROTTLED",
            "FAILED_AUTHENTICATION_THROTTLED",
        ],
        "{report}"
    );
    assert!(
        report.lines().nth(1).is_some_and(|l| l.contains("node-b")),
        "the challenge A sent was answered, and recorded, at B: {report}"
    );
    assert!(report.contains("node-a"), "{report}");
}

#[test]
fn a_push_pending_at_one_node_makes_the_user_busy_at_the_other_until_it_ends() {
    let Some(Cluster {
        url,
        a_dir,
        b_dir,
        a,
        a_http,
        b,
        b_http,
    }) = Cluster::new()
    else {
        return;
    };
    // bob approves by push, through the trial's console provider (which
    // delivers by writing to the log; nobody approves).
    let o = run_bin(
        a_dir.path(),
        &["user", "add", "bob", "--password-stdin"],
        Some("bob-pass\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run_bin(
        a_dir.path(),
        &["user", "set", "bob", "--method", "push"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let key = mfa_proxy::store::SeedKey::load(&a_dir.path().join("data/seed.key")).expect("key");
    let store = mfa_proxy::store::PgStore::connect(&url, key, 1).expect("store");
    let pending = || {
        store
            .verifications(now() as i64)
            .expect("list")
            .into_iter()
            .map(|v| (v.user, v.node))
            .collect::<Vec<_>>()
    };

    let mut node_a = serve(a_dir.path(), a_http);
    let _b = serve(b_dir.path(), b_http);
    // A holds bob's request while the push is pending (nobody answers it).
    let held = std::thread::spawn(move || login_as(a, "bob", "bob-pass", None, 2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending().is_empty() {
        assert!(Instant::now() < deadline, "no verification started at A");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pending(), [("bob".to_owned(), "node-a".to_owned())]);
    // B refuses bob at once: one verification per user in the cluster.
    let started = Instant::now();
    let out = login_as(b, "bob", "bob-pass", None, 2);
    assert!(out.contains("Received Access-Reject"), "{out}");
    assert!(out.contains("already in progress"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(1), "at once");
    let out = held.join().expect("radclient");
    assert!(
        !out.contains("Received Access-"),
        "held, not answered: {out}"
    );

    // A dies in the middle of the push: its verification expires with its
    // push_timeout (5 s), then bob can log in through B.
    let _ = node_a.0.kill(); // SIGKILL
    let _ = node_a.0.wait();
    let out = login_as(b, "bob", "bob-pass", None, 1);
    assert!(out.contains("already in progress"), "not yet: {out}");
    std::thread::sleep(Duration::from_secs(5));
    let held = std::thread::spawn(move || login_as(b, "bob", "bob-pass", None, 2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending() != [("bob".to_owned(), "node-b".to_owned())] {
        assert!(
            Instant::now() < deadline,
            "no verification at B: {:?}",
            pending()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // `report status`: both nodes (A's heartbeat stopped with it), and the
    // verification B holds.
    let status = text(&run_bin(a_dir.path(), &["report", "status"], None));
    let row = |node: &str| {
        status
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("{node} missing:\n{status}"))
            .to_owned()
    };
    assert!(row("node-b").contains("bob (push)"), "{status}");
    assert!(!row("node-a").contains("bob"), "{status}");
    let out = held.join().expect("radclient");
    assert!(
        !out.contains("Received Access-Reject"),
        "held by B's push: {out}"
    );
}

#[test]
fn an_sms_code_sent_by_a_is_entered_at_b() {
    let Some(c) = Cluster::new() else { return };
    let dir = c.a_dir.path();
    let o = run_bin(
        dir,
        &["user", "add", "carol", "--password-stdin"],
        Some("carol-pass\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let set = ["user", "set", "carol", "--method", "sms", "--phone"];
    let o = run_bin(dir, &[&set[..], &["+4930123456"]].concat(), None);
    assert!(o.status.success(), "{}", text(&o));
    let _a = serve(dir, c.a_http);
    let _b = serve(c.b_dir.path(), c.b_http);
    // A sends the SMS (the console provider writes it to A's log) and asks
    // for its code.
    let out = login_as(c.a, "carol", "carol-pass", None, 5);
    let state = state_from(&out);
    let log = std::fs::read_to_string(dir.join("serve.log")).expect("log");
    let code: String = log
        .lines()
        .find_map(|l| l.split("Your sign-in code is ").nth(1))
        .unwrap_or_else(|| panic!("no SMS in A's log:\n{log}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6, "{log}");
    // The NAS fails over: B checks the code A sent.
    let out = login_as(c.b, "carol", &code, Some(&state), 5);
    assert!(out.contains("Received Access-Accept"), "{out}");
    let key = mfa_proxy::store::SeedKey::load(&dir.join("data/seed.key")).expect("key");
    let store = mfa_proxy::store::PgStore::connect(&c.url, key, 1).expect("store");
    let records: Vec<(String, String)> = (store.audit(Some("carol"), None).expect("audit"))
        .into_iter()
        .map(|r| (r.server, r.result.to_string()))
        .collect();
    assert_eq!(
        records,
        [("node-b".into(), "SUCCESS_SMS_AUTHENTICATED".into())]
    );
    assert!(
        store.verifications(now() as i64).expect("list").is_empty(),
        "B ended the verification A started: carol is not busy"
    );
    // The same code again, at A: its challenge is used up.
    let out = login_as(c.a, "carol", &code, Some(&state), 5);
    assert!(out.contains("Received Access-Reject"), "{out}");
}
