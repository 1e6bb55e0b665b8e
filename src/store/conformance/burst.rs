//! A burst of logins in one transaction: the facts, the challenges taken
//! and the steps claimed of users alone in it go together (one statement
//! per kind where the backend can), and answer exactly as jobs run in turn.

use super::*;
use crate::mfa::otp::{TotpParams, Verdict, totp_code};
use crate::store::login::{StoreAnswer, StoreOp, Taking, run_batch, stage_batch};

const NOW: UnixTime = 1_700_000_010;

const LOCKOUT: LockoutPolicy = LockoutPolicy {
    denials: 3,
    reset_after: 600,
    unblock_after: 1800,
};

/// Each user's seed is their own, so a code found on another's token
/// would show.
fn seed(name: &str) -> Vec<u8> {
    format!("{name:-<20}").into_bytes()
}

fn code(name: &str, at: UnixTime) -> String {
    totp_code(&TotpParams::default(), &seed(name), at as u64)
}

/// Users with an active app each.
fn enrolled(s: &dyn Store, names: &[&str]) {
    for name in names {
        s.add_user(&user(name)).expect("add");
        let id = s.add_token(&totp(name), &seed(name)).expect("token");
        s.activate_token(id).expect("activate");
    }
}

fn verify(s: &dyn Store, name: &str, code: String, answers: Option<Taking>) -> StoreOp {
    let facts = s.login_state(name, NOW).expect("state").expect("user");
    StoreOp::Verify {
        user: name.into(),
        code: zeroize::Zeroizing::new(code),
        window: 1,
        lockout: LOCKOUT,
        tokens: facts.tokens,
        denied: facts.denied,
        answers,
    }
}

fn verdict(a: &StoreAnswer) -> Verdict {
    match a {
        StoreAnswer::Verify { verdict, .. } => *verdict,
        other => panic!("not a code check: {other:?}"),
    }
}

pub(super) fn a_burst_reads_and_checks_its_logins_together(f: &Fixture) {
    let s = f.store();
    enrolled(s, &["ann", "bea", "cid", "dov"]);
    s.add_user(&user("eve")).expect("add");
    s.block("ann", "r", NOW, NOW + 10).expect("block");
    s.block("cid", "r", NOW, NOW + 10).expect("block");

    // Facts, each at the time its job was asked.
    let facts = |user: &str| StoreOp::Facts { user: user.into() };
    let asked = [
        facts("ann"),
        facts("ghost"),
        facts("eve"),
        facts("BEA"),
        facts("cid"),
    ];
    let at = [NOW, NOW, NOW, NOW, NOW + 20];
    let found: Vec<Option<Box<UserFacts>>> = stage_batch(s.as_login(), &asked, &at)
        .into_iter()
        .map(|o| match o.finish() {
            StoreAnswer::Facts(f) => f,
            other => panic!("not facts: {other:?}"),
        })
        .collect();
    let tokens_of = |i: usize| -> Vec<String> {
        found[i]
            .as_ref()
            .expect("known")
            .tokens
            .iter()
            .map(|(t, _)| t.user.clone())
            .collect()
    };
    assert!(
        found[0].as_ref().expect("ann").blocked,
        "blocked at its time"
    );
    assert!(found[1].is_none(), "unknown");
    assert_eq!(tokens_of(0), ["ann"]);
    assert_eq!(tokens_of(2), Vec::<String>::new(), "eve has none");
    assert_eq!(tokens_of(3), ["bea"], "names fold");
    assert!(
        !found[4].as_ref().expect("cid").blocked,
        "the block ended before its time"
    );

    // bea's code answers a challenge another node took already.
    let state = vec![7; 20];
    let kept = run_batch(
        s.as_login(),
        &[
            StoreOp::PutChallenge {
                state: state.clone(),
                node: "s1".into(),
                user: "bea".into(),
                expires_at: NOW + 60,
                login: zeroize::Zeroizing::new(vec![1; 8]),
            },
            StoreOp::TakeChallenge {
                state: state.clone(),
                node: "s2".into(),
            },
        ],
        NOW,
    );
    assert!(matches!(kept[1], StoreAnswer::Challenge(Some(_))));
    let taking = Taking {
        state,
        node: "s1".into(),
    };
    let burst = [
        verify(s, "ann", code("ann", NOW), None),
        verify(s, "bea", code("bea", NOW), Some(taking)),
        verify(s, "cid", code("ann", NOW), None),
        verify(s, "dov", code("dov", NOW), None),
        verify(s, "DOV", code("dov", NOW), None),
    ];
    let answers = run_batch(s.as_login(), &burst, NOW);
    let step = (NOW / 30) as u64;
    assert_eq!(verdict(&answers[0]), Verdict::Valid { step });
    assert_eq!(
        answers[1],
        StoreAnswer::Challenge(None),
        "taken elsewhere: not checked"
    );
    assert_eq!(verdict(&answers[2]), Verdict::Incorrect, "another's code");
    assert_eq!(
        (verdict(&answers[3]), verdict(&answers[4])),
        (Verdict::Valid { step }, Verdict::Duplicate),
        "one user twice in a burst: in turn, one wins"
    );

    let again = run_batch(
        s.as_login(),
        &[
            verify(s, "ann", code("ann", NOW), None),
            verify(s, "bea", code("bea", NOW), None),
        ],
        NOW,
    );
    assert_eq!(verdict(&again[0]), Verdict::Duplicate, "the claim was kept");
    assert_eq!(
        verdict(&again[1]),
        Verdict::Valid { step },
        "a code not checked claimed nothing"
    );
    let cid = s.login_state("cid", NOW + 20).expect("state").expect("cid");
    assert!(cid.denied, "the wrong code was counted");
}

/// Bursts on several connections at once, each with the same right code of
/// every user: each code is accepted once in all.
pub(super) fn racing_bursts_accept_each_code_once(f: &Fixture) {
    let names: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    enrolled(f.store(), &refs);
    let stores: Vec<Box<dyn Store>> = (0..4).map(|_| f.reopen()).collect();
    let bursts: Vec<Vec<StoreOp>> = stores
        .iter()
        .map(|s| {
            refs.iter()
                .map(|n| verify(s.as_ref(), n, code(n, NOW), None))
                .collect()
        })
        .collect();
    let barrier = std::sync::Barrier::new(stores.len());
    let won: Vec<Vec<bool>> = std::thread::scope(|sc| {
        let runs: Vec<_> = stores
            .iter()
            .zip(&bursts)
            .map(|(s, burst)| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    run_batch(s.as_login(), burst, NOW)
                        .iter()
                        .map(|a| matches!(verdict(a), Verdict::Valid { .. }))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("burst")).collect()
    });
    for (i, name) in refs.iter().enumerate() {
        let wins = won.iter().filter(|w| w[i]).count();
        assert_eq!(wins, 1, "{name}'s code won {wins} times");
    }
}
