//! The store side of a login against a real (SQLite) store: code checks
//! and their replay claims, lockout, and batches that lose a conflict.

use super::*;
use crate::mfa::Method;
use crate::mfa::otp::{TotpParams, totp_code};
use crate::store::testkit::Steps;
use crate::store::{Retry, SeedKey, SqliteStore, Store, StoredChallenge, Token, User};

const SEED: &[u8] = b"0123456789abcdefghij";

fn store_with_alice() -> SqliteStore {
    let s = SqliteStore::in_memory(SeedKey::from_bytes(&[5; 32])).expect("open");
    s.add_user(&User::new("alice", Method::Totp)).expect("add");
    s
}

fn enroll(s: &SqliteStore) {
    let t = Token {
        active: true,
        ..Token::totp("alice", TotpParams::default())
    };
    s.add_token(&t, SEED).expect("token");
}

const LOCKOUT: LockoutPolicy = LockoutPolicy {
    denials: 3,
    reset_after: 600,
    unblock_after: 1800,
};

/// Alice's active tokens, as her precheck reads them.
fn tokens(s: &SqliteStore) -> Tokens {
    s.login_state("alice", 0)
        .expect("state")
        .expect("alice")
        .tokens
}

fn verify_op(s: &SqliteStore, code: &str) -> StoreOp {
    StoreOp::Verify {
        user: "alice".into(),
        code: Zeroizing::new(code.into()),
        window: 1,
        lockout: LOCKOUT,
        tokens: tokens(s),
        denied: true,
        answers: None,
    }
}

#[test]
fn a_token_removed_between_the_rounds_is_not_used() {
    let s = store_with_alice();
    enroll(&s);
    let now = 1_700_000_000;
    let code = totp_code(&TotpParams::default(), SEED, now as u64);
    // Read at the precheck, then the administrator removes alice.
    let op = verify_op(&s, &code);
    assert!(s.remove_user("alice").expect("remove"));
    assert!(!matches!(
        run(&s, &op, now),
        StoreAnswer::Verify {
            verdict: Verdict::Valid { .. },
            ..
        }
    ));
}

#[test]
fn one_code_twice_in_one_batch_is_valid_once() {
    let s = store_with_alice();
    enroll(&s);
    let now = 1_700_000_000;
    let code = totp_code(&TotpParams::default(), SEED, now as u64);
    let answers = run_batch(&s, &[verify_op(&s, &code), verify_op(&s, &code)], now);
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
    // Committed: the step stays used for the next batch too.
    assert!(matches!(
        run_batch(&s, &[verify_op(&s, &code)], now)[0],
        StoreAnswer::Verify {
            verdict: Verdict::Duplicate,
            ..
        }
    ));
}

#[test]
fn local_passwords() {
    let s = store_with_alice();
    let mut u = s.user("alice").expect("q").expect("found");
    u.password_hash = Some(crate::cli::hash_password(b"right").expect("hash"));
    s.update_user(&u).expect("update");
    let check = |user: &str, pw: &str| {
        run(
            &s,
            &StoreOp::Password {
                user: user.into(),
                password: crate::secret::Secret::new(pw.as_bytes().to_vec()),
            },
            0,
        )
    };
    assert_eq!(check("alice", "right"), StoreAnswer::Password(true));
    assert_eq!(check("alice", "wrong"), StoreAnswer::Password(false));
    assert_eq!(check("nobody", "right"), StoreAnswer::Password(false));
    assert!(
        argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok(),
        "the dummy hash parses, so it costs a real verification"
    );
}

/// Alice's facts at `now`.
fn facts_at(s: &SqliteStore, now: UnixTime) -> UserFacts {
    match run(
        s,
        &StoreOp::Facts {
            user: "alice".into(),
        },
        now,
    ) {
        StoreAnswer::Facts(Some(f)) => *f,
        other => panic!("no facts: {other:?}"),
    }
}

#[test]
fn facts_and_bypass_claims() {
    let s = store_with_alice();
    let nobody = StoreOp::Facts {
        user: "nobody".into(),
    };
    assert_eq!(run(&s, &nobody, 0), StoreAnswer::Facts(None));
    let f = facts_at(&s, 0);
    assert!(!f.oath() && !f.blocked && !f.locked && !f.bypass_waiting);
    let mut u = s.user("alice").expect("q").expect("found");
    u.method = Method::Call;
    u.phone = Some("+4930123456".into());
    s.update_user(&u).expect("update");
    enroll(&s);
    let f = facts_at(&s, 0);
    assert_eq!(
        (f.method, f.phone.as_deref()),
        (Method::Call, Some("+4930123456"))
    );
    assert_eq!(f.tokens, tokens(&s));
    let claim = StoreOp::ClaimBypass {
        user: "alice".into(),
    };
    assert_eq!(run(&s, &claim, 10), StoreAnswer::Claimed(false));
    s.add_bypass("alice", "r", 0, 100).expect("bypass");
    assert!(
        facts_at(&s, 10).bypass_waiting,
        "reading does not use it up"
    );
    assert_eq!(run(&s, &claim, 10), StoreAnswer::Claimed(true));
    assert_eq!(
        run(&s, &claim, 11),
        StoreAnswer::Claimed(false),
        "a bypass works once"
    );
    s.add_bypass("alice", "r", 0, 100).expect("bypass");
    s.block("alice", "r", 0, 1000).expect("block");
    assert!(facts_at(&s, 20).blocked);
    assert_eq!(
        run(&s, &claim, 20),
        StoreAnswer::Claimed(false),
        "no bypass for a blocked user"
    );
}

#[test]
fn verify_replay_and_lockout() {
    let s = store_with_alice();
    enroll(&s);
    let now: i64 = 1_900_000_000;
    let code = totp_code(&TotpParams::default(), SEED, now as u64);
    let step = now as u64 / 30;
    assert_eq!(
        run(&s, &verify_op(&s, &code), now),
        StoreAnswer::Verify {
            verdict: Verdict::Valid { step },
            locked: false
        }
    );
    assert_eq!(
        run(&s, &verify_op(&s, &code), now),
        StoreAnswer::Verify {
            verdict: Verdict::Duplicate,
            locked: false
        }
    );
    let old = totp_code(&TotpParams::default(), SEED, now as u64 - 30);
    assert_eq!(
        run(&s, &verify_op(&s, &old), now),
        StoreAnswer::Verify {
            verdict: Verdict::Old,
            locked: false
        }
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        run(&s, &verify_op(&s, wrong), now),
        StoreAnswer::Verify {
            verdict: Verdict::Incorrect,
            locked: true
        },
        "the third denial since the last success locks"
    );
    assert!(facts_at(&s, now).locked);
    assert!(!facts_at(&s, now + 1800).locked, "unlocked automatically");
    assert!(
        !format!("{:?}", verify_op(&s, &code)).contains(&code),
        "codes never print"
    );
}

/// A store whose next `fails` commits fail with `retry`, after
/// rolling back.
#[derive(Debug)]
struct Flaky {
    inner: SqliteStore,
    fails: std::sync::atomic::AtomicUsize,
    retry: Retry,
    begun: std::sync::atomic::AtomicUsize,
}

struct FlakyTx<'a> {
    inner: Box<dyn LoginTx + 'a>,
    fail: Option<Retry>,
}

impl LoginStore for Flaky {
    fn begin(&self) -> Result<Box<dyn LoginTx + '_>, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.begun.fetch_add(1, SeqCst);
        let fail = self
            .fails
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
            .then_some(self.retry);
        Ok(Box::new(FlakyTx {
            inner: self.inner.begin()?,
            fail,
        }))
    }
    fn open_seed(&self, t: &Token, sealed: &SealedSeed) -> Result<crate::store::Seed, StoreError> {
        self.inner.open_seed(t, sealed)
    }
    fn seal(&self, what: &str, data: &[u8]) -> Vec<u8> {
        self.inner.seal(what, data)
    }
    fn open(&self, what: &str, sealed: &[u8]) -> Result<crate::store::Seed, StoreError> {
        self.inner.open(what, sealed)
    }
}

impl LoginTx for FlakyTx<'_> {
    fn facts(&mut self, user: &str, now: UnixTime) -> Result<Option<UserFacts>, StoreError> {
        self.inner.facts(user, now)
    }
    fn password_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        self.inner.password_hash(user)
    }
    fn pin_hash(&mut self, user: &str) -> Result<Option<String>, StoreError> {
        self.inner.pin_hash(user)
    }
    fn claim_step(&mut self, id: i64, step: u64) -> Result<bool, StoreError> {
        self.inner.claim_step(id, step)
    }
    fn record_denial(
        &mut self,
        user: &str,
        now: UnixTime,
        p: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        self.inner.record_denial(user, now, p)
    }
    fn clear_denials(&mut self, user: &str) -> Result<(), StoreError> {
        self.inner.clear_denials(user)
    }
    fn take_bypass(&mut self, user: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.inner.take_bypass(user, now)
    }
    fn block(
        &mut self,
        u: &str,
        r: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.block(u, r, now, until)
    }
    fn remember(&mut self, u: &str, r: &Remembered, k: UnixTime) -> Result<(), StoreError> {
        self.inner.remember(u, r, k)
    }
    fn append_audit(&mut self, rec: &AuditRecord) -> Result<(), StoreError> {
        self.inner.append_audit(rec)
    }
    fn prune_audit(&mut self, before: UnixTime, limit: u32) -> Result<u64, StoreError> {
        self.inner.prune_audit(before, limit)
    }
    fn start_verification(&mut self, v: &crate::store::Verification) -> Result<bool, StoreError> {
        self.inner.start_verification(v)
    }
    fn end_verification(&mut self, user: &str, id: &[u8], node: &str) -> Result<(), StoreError> {
        self.inner.end_verification(user, id, node)
    }
    fn verification(
        &mut self,
        id: &[u8],
        now: UnixTime,
    ) -> Result<Option<crate::store::Verification>, StoreError> {
        self.inner.verification(id, now)
    }
    fn move_verification(
        &mut self,
        id: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.inner.move_verification(id, node, now)
    }
    fn put_answer(&mut self, a: &crate::store::StoredAnswer) -> Result<bool, StoreError> {
        self.inner.put_answer(a)
    }
    fn take_answers(&mut self, ids: &[Vec<u8>]) -> Result<crate::store::KeptAnswers, StoreError> {
        self.inner.take_answers(ids)
    }
    fn drop_challenge(&mut self, state: &[u8], node: &str) -> Result<bool, StoreError> {
        self.inner.drop_challenge(state, node)
    }
    fn grant_grace(
        &mut self,
        user: &str,
        client: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.grant_grace(user, client, until, now)
    }
    fn take_grace(&mut self, user: &str, client: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.inner.take_grace(user, client, now)
    }
    fn heartbeat(&mut self, n: &NodeSeen) -> Result<(), StoreError> {
        self.inner.heartbeat(n)
    }
    fn put_challenge(&mut self, c: &StoredChallenge) -> Result<(), StoreError> {
        self.inner.put_challenge(c)
    }
    fn take_challenge(
        &mut self,
        state: &[u8],
        node: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.take_challenge(state, node, now)
    }
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match self.fail {
            // Dropping the inner transaction rolls it back.
            Some(retry) => Err(StoreError::database("lost to another transaction", retry)),
            None => self.inner.commit(),
        }
    }
}

fn flaky(fails: usize, retry: Retry) -> Flaky {
    let s = store_with_alice();
    enroll(&s);
    Flaky {
        inner: s,
        fails: fails.into(),
        retry,
        begun: 0.into(),
    }
}

#[test]
fn a_batch_that_lost_a_conflict_runs_again_and_counts_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let now = 1_700_000_000;
    let code = totp_code(&TotpParams::default(), SEED, now as u64);
    // Twice rolled back, then committed: the code is valid once.
    let f = flaky(2, Retry::Now);
    let op = verify_op(&f.inner, &code);
    assert!(matches!(
        run(&f, &op, now),
        StoreAnswer::Verify {
            verdict: Verdict::Valid { .. },
            ..
        }
    ));
    assert_eq!(f.begun.load(SeqCst), 3);
    // Three times: the batch fails closed, nothing of it kept.
    let f = flaky(3, Retry::Now);
    let op = verify_op(&f.inner, &code);
    assert_eq!(run(&f, &op, now), StoreAnswer::Failed);
    assert_eq!(f.begun.load(SeqCst), 3, "three attempts at most");
    assert!(
        matches!(
            run(&f, &op, now),
            StoreAnswer::Verify {
                verdict: Verdict::Valid { .. },
                ..
            }
        ),
        "the failed attempts claimed nothing"
    );
    // A lost connection: whether the commit took is unknown, so the
    // batch is not run again.
    let f = flaky(1, Retry::Later);
    let op = verify_op(&f.inner, &code);
    assert_eq!(run(&f, &op, now), StoreAnswer::Failed);
    assert_eq!(f.begun.load(SeqCst), 1);
}
