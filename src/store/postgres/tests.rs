//! The PostgreSQL store against a real server: the tests of the whole
//! (migrations, the pool, users, tokens) here, the login path's in
//! `tests_login.rs`. They share one throwaway server per test binary and
//! take a database each; without PostgreSQL (and CI unset) they skip.

use std::time::{Duration, Instant};

use super::*;
use crate::mfa::Method;
use crate::store::testkit::Steps;
pub(super) use crate::store::testkit::{totp, user};

pub(super) use crate::store::pg_server;

pub(super) fn key() -> SeedKey {
    SeedKey::from_bytes(&[1; 32])
}

/// A new database on the shared server, or `None` to skip.
pub(super) fn database() -> Option<String> {
    Some(pg_server::PgServer::shared()?.new_database())
}

/// A store on a new database, or `None` to skip.
pub(super) fn store() -> Option<PgStore> {
    let url = database()?;
    Some(PgStore::connect(&url, key(), 4).expect("connect"))
}

#[test]
fn migrations_create_the_schema_once_and_refuse_a_newer_one() {
    let Some(url) = database() else { return };
    // Three nodes starting together on an empty database.
    std::thread::scope(|sc| {
        let racers: Vec<_> = (0..3)
            .map(|_| sc.spawn(|| PgStore::connect(&url, key(), 1).map(|_| ())))
            .collect();
        for r in racers {
            r.join().expect("thread").expect("concurrent connect");
        }
    });
    let s = PgStore::connect(&url, key(), 2).expect("connect");
    let supported = schema::MIGRATIONS.len() as i64;
    assert_eq!(s.schema_version().expect("version"), supported);
    s.add_user(&user("kept")).expect("add");
    let again = PgStore::connect(&url, key(), 2).expect("connect again");
    assert_eq!(again.schema_version().expect("version"), supported);
    assert!(again.user("kept").expect("user").is_some(), "data kept");
    let mut raw = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("raw");
    raw.execute("UPDATE schema_version SET version = version + 1", &[])
        .expect("bump");
    match PgStore::connect(&url, key(), 2) {
        Err(StoreError::SchemaTooNew {
            found,
            supported: s,
        }) => {
            assert_eq!((found, s), (supported + 1, supported));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn sqlstates_say_when_a_retry_helps() {
    for (code, retry) in [
        ("40001", Retry::Now),
        ("40P01", Retry::Now),
        ("08006", Retry::Later),
        ("08001", Retry::Later),
        ("57P01", Retry::Later),
        ("57P02", Retry::Later),
        ("57P03", Retry::Later),
        ("57014", Retry::No),
        ("23505", Retry::No),
        ("42P01", Retry::No),
    ] {
        assert_eq!(pool::retry_of_code(code), retry, "{code}");
    }
}

#[test]
fn a_unique_violation_names_no_value() {
    let Some(s) = store() else { return };
    s.add_user(&user("v")).expect("add");
    let mut c = s.pool.checkout().expect("conn");
    let e = c
        .exec(
            "INSERT INTO users (name_key, name, created_at) VALUES ($1, $1, 0)",
            &[&"v"],
        )
        .expect_err("duplicate");
    assert!(pool::is_unique_violation(&e));
    assert_eq!(e.retry(), Retry::No);
    assert!(!e.to_string().contains("(v)"), "{e}");
}

#[test]
fn a_bad_url_or_an_unreachable_server_is_an_error_without_the_password() {
    let e = PgStore::connect("postgres://u:secretpw@[", key(), 1).expect_err("bad url");
    assert!(!e.to_string().contains("secretpw"), "{e}");
    // A port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgres://u:secretpw@127.0.0.1:{port}/db");
    let e = PgStore::connect(&url, key(), 1).expect_err("refused");
    assert_eq!(e.retry(), Retry::Later, "{e}");
    assert!(!e.to_string().contains("secretpw"), "{e}");
}

#[test]
fn users_crud_and_case_insensitive_names() {
    let Some(s) = store() else { return };
    s.add_user(&user("Alice")).expect("add");
    assert!(matches!(
        s.add_user(&user("alice")),
        Err(StoreError::UserExists(_))
    ));
    let mut u = s.user("ALICE").expect("query").expect("found");
    assert_eq!(u.name, "Alice");
    u.phone = Some("+15551234567".into());
    u.method = Method::Sms;
    s.update_user(&u).expect("update");
    assert_eq!(
        s.user("alice").expect("q").expect("found").method,
        Method::Sms
    );
    // Non-ASCII letters fold too.
    s.add_user(&user("Ärger")).expect("add");
    assert!(matches!(
        s.add_user(&user("äRGER")),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(s.user("ÄRGER").expect("q").expect("found").name, "Ärger");
    s.add_user(&user("bob")).expect("add");
    let names: Vec<String> = s
        .users()
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["Alice", "bob", "Ärger"]);
    assert!(s.remove_user("äRGER").expect("rm"));
    assert!(s.remove_user("alice").expect("rm"));
    assert!(!s.remove_user("alice").expect("rm"));
    assert!(matches!(s.update_user(&u), Err(StoreError::NoSuchUser(_))));
    assert_eq!(s.users().expect("list").len(), 1);
}

#[test]
fn groups_are_kept_sorted_without_duplicates_and_replaced_whole() {
    let Some(s) = store() else { return };
    let mut u = user("g");
    u.groups = vec!["VPN".into(), "admins".into(), "vpn".into(), "Öl".into()];
    s.add_user(&u).expect("add");
    let stored = s.user("G").expect("q").expect("found");
    assert_eq!(stored.groups, ["admins", "VPN", "Öl"]);
    u.groups = vec!["öL".into()];
    s.update_user(&u).expect("update");
    assert_eq!(s.user("g").expect("q").expect("found").groups, ["öL"]);
    assert_eq!(s.users().expect("list")[0].groups, ["öL"]);
}

#[test]
fn seeds_are_sealed_and_steps_claimed_once() {
    let Some(s) = store() else { return };
    assert!(matches!(
        s.add_token(&totp("nobody"), b"seed"),
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_user(&user("Ärger")).expect("add");
    let id = s
        .add_token(&totp("äRGER"), b"12345678901234567890")
        .expect("token");
    let t = &s.tokens("ÄRGER").expect("tokens")[0];
    assert_eq!((t.id, t.user.as_str(), t.active), (id, "äRGER", false));
    assert_eq!(&s.token_seed(t).expect("seed")[..], b"12345678901234567890");
    // The seed is bound to its user, whatever the case of the name.
    let other = Token {
        user: "someone".into(),
        ..t.clone()
    };
    assert!(matches!(s.token_seed(&other), Err(StoreError::SealBroken)));
    assert!(!s.claim_step(id, 5).expect("claim"), "pending");
    s.activate_token(id).expect("activate");
    assert!(s.claim_step(id, 5).expect("claim"));
    assert!(!s.claim_step(id, 5).expect("claim"), "replay");
    assert!(!s.claim_step(id, 4).expect("claim"), "older");
    assert!(s.claim_step(id, 6).expect("claim"));
    let t = &s.tokens("ärger").expect("tokens")[0];
    assert_eq!((t.last_step, t.counter, t.active), (Some(6), 7, true));
    s.add_token(&totp("ärger"), b"pending").expect("token");
    s.remove_pending_tokens("ÄRGER", TokenKind::Totp)
        .expect("remove pending");
    assert_eq!(s.tokens("ärger").expect("tokens").len(), 1);
    assert!(s.remove_user("ärger").expect("rm"));
    assert!(!s.claim_step(id, 9).expect("claim"), "gone with the user");
}

#[test]
fn hardware_serials_belong_to_one_user() {
    let Some(s) = store() else { return };
    s.add_user(&user("a")).expect("add");
    s.add_user(&user("b")).expect("add");
    let hw = |u: &str| Token {
        serial: Some("HW-1".into()),
        model: Some("Acme 6".into()),
        ..totp(u)
    };
    let id = s.add_token(&hw("a"), b"s").expect("token");
    assert!(matches!(
        s.add_token(&hw("b"), b"s"),
        Err(StoreError::SerialTaken(serial)) if serial == "HW-1"
    ));
    let t = s.token_by_serial("HW-1").expect("q").expect("found");
    assert_eq!(
        (t.id, t.user.as_str(), t.model.as_deref()),
        (id, "a", Some("Acme 6"))
    );
    assert!(s.remove_token("HW-1").expect("rm"));
    assert!(!s.remove_token("HW-1").expect("rm"));
    assert_eq!(s.token_by_serial("HW-1").expect("q"), None);
}

#[test]
fn a_checkout_waits_five_seconds_at_most_and_a_dropped_tx_rolls_back() {
    let Some(url) = database() else { return };
    let s = PgStore::connect(&url, key(), 1).expect("connect");
    s.add_user(&user("w")).expect("add");
    let mut tx = s.begin().expect("begin");
    tx.block("w", "r", 1, i64::MAX).expect("block");
    let started = Instant::now();
    let e = s.user("w").expect_err("the only connection is taken");
    assert_eq!(e.retry(), Retry::Later);
    assert!(started.elapsed() >= Duration::from_secs(4), "it waited");
    drop(tx);
    assert_eq!(s.blocked_until("w", 2).expect("q"), None, "rolled back");
    assert!(s.block_history().expect("history").is_empty());
}

#[test]
fn the_pool_recovers_after_the_server_restarts() {
    let Some(server) = pg_server::PgServer::start_or_skip() else {
        return;
    };
    let url = server.new_database();
    let s = PgStore::connect(&url, key(), 2).expect("connect");
    s.add_user(&user("r")).expect("add");
    // Both connections open and idle.
    let (a, b) = (s.begin().expect("a"), s.begin().expect("b"));
    drop((a, b));
    server.restart();
    let mut failures = 0;
    let found = loop {
        match s.user("r") {
            Ok(u) => break u,
            Err(e) => {
                assert_eq!(e.retry(), Retry::Later, "{e}");
                failures += 1;
                assert!(failures <= 2, "each dead connection fails once: {e}");
            }
        }
    };
    assert!(found.is_some());
    assert!(s.login_state("r", 1).expect("facts").is_some());
    server.stop();
    let e = s.user("r").expect_err("stopped");
    assert_eq!(e.retry(), Retry::Later, "{e}");
    server.start_again();
    let mut tries = 0;
    while s.user("r").is_err() {
        tries += 1;
        assert!(tries < 3, "recovers once the server is back");
    }
}

#[test]
fn a_node_with_another_seed_key_is_refused() {
    let Some(url) = database() else {
        return;
    };
    let s = PgStore::connect(&url, key(), 1).expect("the first node records its key");
    s.add_user(&user("k")).expect("add");
    let other = SeedKey::from_bytes(&[9; 32]);
    let e = PgStore::connect(&url, other, 1).expect_err("another key");
    assert!(matches!(e, StoreError::KeyMismatch), "{e}");
    assert!(e.to_string().contains("key_file of the node that created"));
    PgStore::connect(&url, key(), 1).expect("the same key again");
}

#[test]
fn serve_starts_while_the_database_is_down_and_uses_it_once_up() {
    let Some(server) = pg_server::PgServer::start_or_skip() else {
        return;
    };
    let url = server.new_database();
    server.stop();
    let s = PgStore::connect_lazily(&url, key(), 2).expect("starts anyway");
    let e = s.begin().map(drop).expect_err("down");
    assert_eq!(e.retry(), Retry::Later, "{e}");
    server.start_again();
    // The first call that reaches it creates the schema.
    let mut tries = 0;
    while let Err(e) = s.add_user(&user("late")) {
        tries += 1;
        assert!(tries < 3, "{e}");
    }
    assert!(s.login_state("LATE", 1).expect("facts").is_some());
    assert!(s.schema_version().expect("version") >= 2);
    // A wrong key is no reason to wait: refused at once.
    assert!(matches!(
        PgStore::connect_lazily(&url, SeedKey::from_bytes(&[9; 32]), 1),
        Err(StoreError::KeyMismatch)
    ));
}

/// An answer kept for a node wakes that node (NOTIFY, on commit only),
/// and only that node; a node listening again after its connection was
/// lost is told to look for itself.
#[test]
fn an_answer_kept_for_a_node_wakes_it_once_committed() {
    let Some(url) = database() else { return };
    let s = PgStore::connect(&url, key(), 2).expect("connect");
    let (tx, rx) = std::sync::mpsc::channel();
    let wake = Box::new(move |id: Option<Vec<u8>>| tx.send(id).is_ok());
    s.subscribe("node-a", wake).expect("subscribe");
    // A bound, not a measurement: how long a wake-up may take at most.
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("woken");
    assert_eq!(next(), None, "listening: look for what came before");
    let answer = |id: u8, node: &str| StoredAnswer {
        id: vec![id; 16],
        node: node.into(),
        expires_at: i64::MAX,
        sealed: vec![0; 8],
    };
    // Rolled back: nobody is woken.
    let mut t = s.begin().expect("begin");
    assert!(t.put_answer(&answer(1, "node-a")).expect("put"));
    drop(t);
    crate::store::in_tx(&s, |t| t.put_answer(&answer(2, "node-b"))).expect("for b");
    crate::store::in_tx(&s, |t| t.put_answer(&answer(3, "node-a"))).expect("for a");
    assert_eq!(next(), Some(vec![3; 16]), "only its own, once committed");
    // The server ends the listening connection: it comes back, and says so.
    let killer = PgStore::connect(&url, key(), 1).expect("connect");
    let mut c = killer.pool.checkout().expect("checkout");
    c.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        &[],
    )
    .expect("terminate");
    assert_eq!(next(), None, "back: look again");
    crate::store::in_tx(&s, |t| t.put_answer(&answer(4, "node-a"))).expect("for a");
    assert_eq!(next(), Some(vec![4; 16]));
}
