//! The login path against a real server: the login state, claims from
//! several connections, lockout, blocks, bypasses, remembered logins and
//! the audit trail.

use std::sync::Barrier;
use std::time::Duration;

use super::tests::{database, key, store, totp, user};
use super::*;
use crate::mfa::{Method, ResultCode};
use crate::store::testkit::Steps;

fn vpn(address: Option<&str>, at: UnixTime) -> Remembered {
    Remembered {
        auth_type: "pap".into(),
        app: "vpn".into(),
        address: address.map(Into::into),
        at,
    }
}

#[test]
fn login_state_in_one_query() {
    let Some(s) = store() else { return };
    let now = 1_000;
    assert_eq!(s.login_state("bob", now).expect("state"), None);
    let mut u = user("Bob");
    u.groups = vec!["vpn".into(), "Admins".into()];
    u.phone = Some("+1555".into());
    u.pin_hash = Some("$argon2id$pin".into());
    u.language = Some("de".into());
    s.add_user(&u).expect("add");
    let a = s.add_token(&totp("bob"), b"seed-a").expect("token");
    let b = s.add_token(&totp("bob"), b"seed-b").expect("token");
    s.add_token(&totp("bob"), b"pending").expect("token");
    s.activate_token(b).expect("activate");
    s.activate_token(a).expect("activate");
    s.remember("bob", &vpn(None, now - 10), 0)
        .expect("remember");
    s.remember("bob", &vpn(Some("192.0.2.1"), now - 5), 0)
        .expect("remember");
    let f = s.login_state("BOB", now).expect("state").expect("known");
    assert_eq!(
        (f.blocked, f.bypass_waiting, f.locked, f.method, f.pin),
        (false, false, false, Method::Totp, true)
    );
    assert_eq!(
        (f.phone.as_deref(), f.language.as_deref()),
        (Some("+1555"), Some("de"))
    );
    assert_eq!(f.groups, ["Admins", "vpn"]);
    assert_eq!(
        f.remembered,
        [vpn(Some("192.0.2.1"), now - 5), vpn(None, now - 10)]
    );
    let ids: Vec<i64> = f.tokens.iter().map(|(t, _)| t.id).collect();
    assert_eq!(ids, [a, b], "the active tokens, by id");
    let seeds: Vec<Vec<u8>> = f
        .tokens
        .iter()
        .map(|(t, sealed)| s.open_seed(t, sealed).expect("open").to_vec())
        .collect();
    assert_eq!(seeds, [b"seed-a".to_vec(), b"seed-b".to_vec()]);
    s.add_bypass("bob", "r", now, now + 10).expect("bypass");
    s.block("bob", "r", now, now + 5).expect("block");
    let p = LockoutPolicy {
        denials: 1,
        reset_after: 60,
        unblock_after: 30,
    };
    s.record_denial("bob", now, &p).expect("deny");
    let f = s.login_state("bob", now).expect("state").expect("known");
    assert_eq!((f.blocked, f.bypass_waiting, f.locked), (true, true, true));
    assert!(f.remembered.is_empty(), "the block forgot them");
    let later = s
        .login_state("bob", now + 30)
        .expect("state")
        .expect("known");
    assert_eq!(
        (later.blocked, later.bypass_waiting, later.locked),
        (false, false, false)
    );
}

#[test]
fn concurrent_claims_of_one_step_have_one_winner() {
    let Some(url) = database() else { return };
    let s = PgStore::connect(&url, key(), 8).expect("connect");
    s.add_user(&user("race")).expect("add");
    let id = s.add_token(&totp("race"), b"seed").expect("token");
    s.activate_token(id).expect("activate");
    let start = Barrier::new(8);
    let winners: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    start.wait();
                    usize::from(s.claim_step(id, 777).expect("claim"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(winners, 1);
    // A claim that waits for an uncommitted one sees its step used.
    let mut first = s.begin().expect("begin");
    assert!(first.claim_step(id, 778).expect("claim"));
    std::thread::scope(|sc| {
        let second = sc.spawn(|| s.claim_step(id, 778).expect("claim"));
        std::thread::sleep(Duration::from_millis(300));
        first.commit().expect("commit");
        assert!(!second.join().expect("thread"), "the waiting claim lost");
    });
}

#[test]
fn lockout_counts_resets_and_unlocks() {
    let Some(s) = store() else { return };
    s.add_user(&user("carol")).expect("add");
    let p = LockoutPolicy {
        denials: 3,
        reset_after: 100,
        unblock_after: 50,
    };
    assert_eq!(s.record_denial("Carol", 0, &p).expect("d"), None);
    assert_eq!(s.record_denial("carol", 10, &p).expect("d"), None);
    // A new run after reset_after.
    assert_eq!(s.record_denial("carol", 200, &p).expect("d"), None);
    assert_eq!(s.record_denial("carol", 210, &p).expect("d"), None);
    assert_eq!(s.record_denial("CAROL", 220, &p).expect("d"), Some(270));
    assert_eq!(s.locked_until("carol", 230).expect("q"), Some(270));
    assert_eq!(s.locked_until("carol", 270).expect("q"), None);
    in_tx(&s, |tx| tx.clear_denials("carol")).expect("clear");
    assert_eq!(s.record_denial("carol", 230, &p).expect("d"), None);
    s.unblock("carol", "ok", 240).expect("unblock");
    assert_eq!(s.locked_until("carol", 240).expect("q"), None);
    // Denials of an unknown user are counted too, as in SQLite.
    assert_eq!(s.record_denial("ghost", 0, &p).expect("d"), None);
    // Concurrent denials all count.
    let p = LockoutPolicy { denials: 6, ..p };
    let locked: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                sc.spawn(|| usize::from(s.record_denial("dave", 1000, &p).expect("d").is_some()))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(locked, 1, "exactly the sixth denial locks");
}

#[test]
fn block_unblock_and_history() {
    let Some(s) = store() else { return };
    assert!(matches!(
        s.block("nobody", "r", 0, 10),
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_user(&user("Eve")).expect("add");
    s.block("EVE", "fraud", 100, 200).expect("block");
    assert_eq!(s.blocked_until("eve", 150).expect("q"), Some(200));
    assert_eq!(s.blocked_until("eve", 200).expect("q"), None);
    s.unblock("eve", "ok", 160).expect("unblock");
    assert_eq!(s.blocked_until("eve", 170).expect("q"), None);
    let h = s.block_history().expect("history");
    let got: Vec<(&str, &str, &str, i64, Option<i64>)> = h
        .iter()
        .map(|e| {
            (
                e.user.as_str(),
                e.action.as_str(),
                e.reason.as_str(),
                e.at,
                e.until,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("EVE", "block", "fraud", 100, Some(200)),
            ("eve", "unblock", "ok", 160, None)
        ]
    );
    assert!(matches!(
        s.unblock("nobody", "r", 0),
        Err(StoreError::NoSuchUser(_))
    ));
}

#[test]
fn bypass_is_used_once_and_expires() {
    let Some(s) = store() else { return };
    assert!(matches!(
        s.add_bypass("nobody", "r", 0, 10),
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_user(&user("frank")).expect("add");
    s.add_bypass("Frank", "lost phone", 100, 200)
        .expect("bypass");
    assert!(!s.take_bypass("frank", 200).expect("take"), "expired");
    s.block("frank", "r", 100, 150).expect("block");
    assert!(!s.take_bypass("frank", 120).expect("take"), "blocked");
    // Two takers at once: one wins.
    let start = Barrier::new(2);
    let won: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    start.wait();
                    usize::from(s.take_bypass("FRANK", 160).expect("take"))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(won, 1);
    assert!(!s.take_bypass("frank", 160).expect("take"), "used up");
    let h = s.bypass_history().expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].user.as_str(), h[0].action.as_str(), h[0].until),
        ("Frank", "used", Some(200))
    );
}

#[test]
fn remember_keeps_one_row_per_key_prunes_and_is_revoked() {
    let Some(s) = store() else { return };
    assert!(matches!(s.forget("nobody"), Err(StoreError::NoSuchUser(_))));
    assert!(s.remembered("nobody").expect("none").is_empty());
    s.remember("nobody", &vpn(None, 10), 0)
        .expect("unknown: nothing");
    let mut u = user("Gil");
    s.add_user(&u).expect("add");
    s.remember("gil", &vpn(None, 100), 0).expect("r");
    s.remember("GIL", &vpn(None, 90), 0).expect("never earlier");
    s.remember("gil", &vpn(Some(""), 95), 0).expect("r");
    s.remember("gil", &vpn(Some("192.0.2.1"), 100), 0)
        .expect("r");
    assert_eq!(
        s.remembered("gil").expect("list"),
        [
            vpn(None, 100),
            vpn(Some("192.0.2.1"), 100),
            vpn(Some(""), 95)
        ]
    );
    s.remember("gil", &vpn(Some("192.0.2.1"), 120), 96)
        .expect("prune");
    assert_eq!(
        s.remembered("gil").expect("list"),
        [vpn(Some("192.0.2.1"), 120), vpn(None, 100)]
    );
    // Refused for a user blocked or locked after the login's time.
    s.block("gil", "r", 130, 200).expect("block");
    assert!(
        s.remembered("gil").expect("list").is_empty(),
        "the block forgot"
    );
    s.remember("gil", &vpn(None, 140), 0).expect("refused");
    assert!(s.remembered("gil").expect("list").is_empty());
    s.unblock("gil", "r", 141).expect("unblock");
    s.remember("gil", &vpn(None, 142), 0).expect("r");
    assert_eq!(s.forget("Gil").expect("forget"), 1);
    s.remember("gil", &vpn(None, 150), 0).expect("r");
    let p = LockoutPolicy {
        denials: 1,
        reset_after: 10,
        unblock_after: 100,
    };
    s.record_denial("gil", 151, &p).expect("lock");
    assert!(
        s.remembered("gil").expect("list").is_empty(),
        "the lockout forgot"
    );
    s.remember("gil", &vpn(None, 152), 0).expect("refused");
    assert!(s.remembered("gil").expect("list").is_empty());
    // A new phone and a removed token forget them too.
    s.unblock("gil", "r", 153).expect("unblock");
    s.remember("gil", &vpn(None, 154), 0).expect("r");
    s.update_user(&u).expect("same phone");
    assert_eq!(s.remembered("gil").expect("list").len(), 1);
    u.phone = Some("+1555".into());
    s.update_user(&u).expect("new phone");
    assert!(s.remembered("gil").expect("list").is_empty());
    let hw = Token {
        serial: Some("S1".into()),
        ..totp("gil")
    };
    s.add_token(&hw, b"s").expect("token");
    s.remember("gil", &vpn(None, 155), 0).expect("r");
    assert!(s.remove_token("S1").expect("rm"));
    assert!(s.remembered("gil").expect("list").is_empty());
    s.remember("gil", &vpn(None, 156), 0).expect("r");
    assert!(s.remove_user("gil").expect("rm"));
    s.add_user(&user("gil")).expect("add again");
    assert!(
        s.remembered("gil").expect("list").is_empty(),
        "went with the user"
    );
}

fn record(at: UnixTime, user: &str, result: ResultCode) -> AuditRecord {
    AuditRecord {
        at,
        user: user.into(),
        result,
        accepted: result == ResultCode::SuccessOathCodeVerified,
        mode: "totp".into(),
        server: "s1".into(),
        client: "vpn".into(),
        client_ip: Some("192.0.2.7".into()),
        reason: None,
    }
}

#[test]
fn audit_round_trip_and_filters() {
    let Some(s) = store() else { return };
    let a = record(10, "Ärger", ResultCode::SuccessOathCodeVerified);
    let b = record(20, "b", ResultCode::FailedOathCodeIncorrect);
    let c = record(10, "unknown", ResultCode::FailedOathCodeIncorrect);
    for r in [&b, &a, &c] {
        s.append_audit(r).expect("append");
    }
    assert_eq!(s.audit(None, None).expect("all"), [a.clone(), c, b.clone()]);
    assert_eq!(s.audit(Some("B"), None).expect("b"), [b]);
    assert_eq!(s.audit(Some("äRGER"), None).expect("a"), [a]);
    assert_eq!(s.audit(None, Some(15)).expect("since").len(), 1);
    assert_eq!(s.audit(Some("ärger"), Some(15)).expect("since").len(), 0);
}

#[test]
fn a_burst_commits_together_or_not_at_all() {
    let Some(s) = store() else { return };
    s.add_user(&user("h")).expect("add");
    let mut tx = s.begin().expect("begin");
    tx.append_audit(&record(1, "h", ResultCode::SuccessOathCodeVerified))
        .expect("audit");
    assert!(tx.facts("H", 1).expect("facts").is_some());
    assert_eq!(tx.password_hash("h").expect("hash"), None);
    drop(tx);
    assert!(
        s.audit(None, None).expect("audit").is_empty(),
        "rolled back"
    );
    let mut tx = s.begin().expect("begin");
    tx.append_audit(&record(2, "h", ResultCode::SuccessOathCodeVerified))
        .expect("audit");
    tx.commit().expect("commit");
    assert_eq!(s.audit(None, None).expect("audit").len(), 1);
}

#[test]
fn the_login_path_runs_its_jobs_in_one_transaction() {
    use crate::mfa::otp::{TotpParams, Verdict, totp_code};
    use crate::store::login::{StoreAnswer, StoreOp, run_batch};
    use zeroize::Zeroizing;
    let Some(s) = store() else { return };
    const SEED: &[u8] = b"0123456789abcdefghij";
    s.add_user(&user("Ärger")).expect("add");
    let t = Token {
        active: true,
        ..totp("ärger")
    };
    s.add_token(&t, SEED).expect("token");
    let now = 1_700_000_000;
    let facts = match &run_batch(
        &s,
        &[StoreOp::Facts {
            user: "ÄRGER".into(),
        }],
        now,
    )[0]
    {
        StoreAnswer::Facts(Some(f)) => f.clone(),
        other => panic!("facts: {other:?}"),
    };
    let lockout = LockoutPolicy {
        denials: 3,
        reset_after: 600,
        unblock_after: 1800,
    };
    let code = totp_code(&TotpParams::default(), SEED, now as u64);
    let verify = || StoreOp::Verify {
        user: "äRGER".into(),
        code: Zeroizing::new(code.clone()),
        window: 1,
        lockout,
        tokens: facts.tokens.clone(),
        denied: true,
        answers: None,
    };
    let answers = run_batch(
        &s,
        &[
            verify(),
            verify(),
            StoreOp::Audit(AuditRecord {
                at: 0,
                ..audit_record()
            }),
        ],
        now,
    );
    assert!(matches!(
        answers[0],
        StoreAnswer::Verify {
            verdict: Verdict::Valid { .. },
            locked: false
        }
    ));
    assert_eq!(
        answers[1],
        StoreAnswer::Verify {
            verdict: Verdict::Duplicate,
            locked: false
        }
    );
    assert_eq!(answers[2], StoreAnswer::Done);
    assert_eq!(s.audit(Some("ärger"), None).expect("audit")[0].at, now);
}

fn audit_record() -> AuditRecord {
    record(1, "Ärger", ResultCode::SuccessOathCodeVerified)
}
