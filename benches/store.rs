//! The store's share of a TOTP login, without sockets or threads: the three
//! jobs a login sends the store workers (the precheck after the first
//! factor, the code's verification, the audit record), run as the workers
//! run them, in batches of one transaction each: the prechecks of N logins
//! in one, and their verifications (with the tokens their prechecks read)
//! and audit records in the next. Against an SQLite file holding
//! 10,000 enrolled users (`STORE_BENCH_USERS` to change it: with 100,000,
//! more than the store keeps in memory, every login reads its user cold).

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mfa_proxy::mfa::LockoutPolicy;
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::AuditRecord;
use mfa_proxy::store::login::{StoreAnswer, StoreOp, Tokens, run_batch};
use zeroize::Zeroizing;

#[path = "common/mod.rs"]
mod common;
use common::seed_for;

fn users() -> u64 {
    std::env::var("STORE_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

/// The facts read at the start of user `i`'s login.
fn precheck(i: u64) -> StoreOp {
    StoreOp::Facts {
        user: format!("u{i}"),
    }
}

/// The second round of user `i`'s login at `now`: the code's verification
/// (its tokens filled in by [`carry`]) and the audit record.
fn second_round(i: u64, now: u64) -> [StoreOp; 2] {
    let user = format!("u{i}");
    [
        StoreOp::Verify {
            user: user.clone(),
            code: Zeroizing::new(totp_code(&TotpParams::default(), &seed_for(i), now)),
            window: 1,
            lockout: LockoutPolicy {
                denials: 10,
                reset_after: 600,
                unblock_after: 1800,
            },
            tokens: Tokens::from([]),
            denied: true,
            answers: None,
        },
        StoreOp::Audit(AuditRecord {
            at: 0,
            user,
            result: ResultCode::SuccessOathCodeVerified,
            accepted: true,
            mode: "totp".into(),
            server: "bench".into(),
            client: "nas".into(),
            client_ip: Some("127.0.0.1".into()),
            reason: None,
        }),
    ]
}

/// Gives the verification the tokens its precheck read, as the engine does.
fn carry(verify: &mut StoreOp, answer: StoreAnswer) {
    match (verify, answer) {
        (StoreOp::Verify { tokens, .. }, StoreAnswer::Facts(Some(f))) => {
            *tokens = f.tokens;
        }
        (op, answer) => panic!("{op:?} is not ready: {answer:?}"),
    }
}

fn logins(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = users();
    let s = common::populate(dir.path(), users, false);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut g = c.benchmark_group("store: TOTP logins (precheck, verify, audit)");
    // Each user's code is used once per step; run through the users in
    // order and move the clock a step on when they are all used.
    for per_batch in [1u64, 16, 64] {
        let mut next = 0u64;
        let mut step = 0u64;
        g.throughput(Throughput::Elements(per_batch));
        g.bench_function(format!("{per_batch} per transaction"), |b| {
            b.iter_batched(
                || {
                    if next + per_batch > users {
                        next = 0;
                        step += 1;
                    }
                    let (first, at) = (next, now + step * 30);
                    next += per_batch;
                    let prechecks = (first..next).map(precheck).collect::<Vec<_>>();
                    let second = (first..next)
                        .flat_map(|i| second_round(i, at))
                        .collect::<Vec<_>>();
                    (prechecks, second, at as i64)
                },
                |(prechecks, mut second, at)| {
                    let answers = run_batch(&s, &prechecks, at);
                    for (pair, answer) in second.chunks_mut(2).zip(answers) {
                        carry(&mut pair[0], answer);
                    }
                    run_batch(&s, &second, at)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, logins);
criterion_main!(benches);
