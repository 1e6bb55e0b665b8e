//! A burst's reads and claims that go together: the facts of its logins in
//! one query, the challenges its codes answer taken in one statement, and
//! the steps of its right codes claimed in one. On a database server each
//! statement is a round trip and a plan to run, so a burst of a few dozen
//! logins asks three times instead of three times a few dozen.
//!
//! Only jobs of a user with no other job in the burst go together
//! ([`alone`]): their order against the burst's other jobs cannot change
//! what they find, since everything they read or write is their user's.
//! A user with two jobs in one burst has them run in turn, as before.

use std::collections::HashMap;

use super::login::{Found, Staged, StoreAnswer, StoreOp, claimed, find, settle};
use super::{LoginStore, LoginTx, StoreError, Take, UnixTime, fold};
use crate::mfa::otp::Verdict;

/// What each job of the burst became, for those that went together;
/// `None` for the jobs left to run in turn.
pub(super) type Together = Vec<Option<Result<Staged, StoreError>>>;

/// Runs the facts and code checks of the burst's users that are alone in
/// it, each kind together (see the module).
pub(super) fn together(
    store: &dyn LoginStore,
    tx: &mut dyn LoginTx,
    ops: &[StoreOp],
    at: &[UnixTime],
) -> Together {
    let alone = alone(ops);
    let mut out: Together = ops.iter().map(|_| None).collect();
    let of_kind = |facts: bool| -> Vec<usize> {
        (0..ops.len())
            .filter(|&i| alone[i] && matches!(ops[i], StoreOp::Facts { .. }) == facts)
            .collect()
    };
    let (facts, codes) = (of_kind(true), of_kind(false));
    if !facts.is_empty() {
        facts_together(tx, ops, at, &facts, &mut out);
    }
    if !codes.is_empty() {
        codes_together(store, tx, ops, at, &codes, &mut out);
    }
    out
}

/// Which jobs may go together: a user's facts or code check when the
/// burst holds no other job of that user (names fold as the store compares
/// them). Challenges kept and audit records do not count: they are
/// written before and after everything else.
fn alone(ops: &[StoreOp]) -> Vec<bool> {
    let counted = |op: &StoreOp| !matches!(op, StoreOp::PutChallenge { .. } | StoreOp::Audit(_));
    let keys: Vec<Option<String>> = ops
        .iter()
        .map(|op| op.user().filter(|_| counted(op)).map(fold))
        .collect();
    let mut jobs: HashMap<&str, u32> = HashMap::with_capacity(ops.len());
    for k in keys.iter().flatten() {
        *jobs.entry(k).or_default() += 1;
    }
    ops.iter()
        .zip(&keys)
        .map(|(op, k)| {
            matches!(op, StoreOp::Facts { .. } | StoreOp::Verify { .. })
                && k.as_deref().is_some_and(|k| jobs.get(k) == Some(&1))
        })
        .collect()
}

/// What a statement shared by `n` jobs answered, one item per job, or why
/// not: an answer short of one per job fails them all.
fn per_job<T>(
    answered: Result<Vec<T>, StoreError>,
    n: usize,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    match answered {
        Ok(v) if v.len() == n => Ok(v),
        Ok(_) => Err(StoreError::database(
            format!("the {what} of a burst came back short"),
            super::Retry::No,
        )),
        Err(e) => Err(e),
    }
}

/// The failure of a statement, for each of the jobs that shared it (the
/// source stays with the first: it is logged once).
fn fail_all(out: &mut Together, jobs: impl IntoIterator<Item = usize>, e: &StoreError) {
    for i in jobs {
        out[i] = Some(Err(StoreError::database(e.to_string(), e.retry())));
    }
}

fn facts_together(
    tx: &mut dyn LoginTx,
    ops: &[StoreOp],
    at: &[UnixTime],
    jobs: &[usize],
    out: &mut Together,
) {
    let asked: Vec<(&str, UnixTime)> = jobs
        .iter()
        .map(|&i| (ops[i].user().unwrap_or_default(), at[i]))
        .collect();
    match per_job(tx.facts_of(&asked), jobs.len(), "facts") {
        Ok(found) => {
            for (&i, f) in jobs.iter().zip(found) {
                out[i] = Some(Ok(Staged::Answer(StoreAnswer::Facts(f.map(Box::new)))));
            }
        }
        Err(e) => fail_all(out, jobs.iter().copied(), &e),
    }
}

/// The burst's code checks: the challenges they answer taken (a code whose
/// challenge another node took is not checked), each code found among its
/// user's tokens, the steps claimed, then each verdict counted.
fn codes_together(
    store: &dyn LoginStore,
    tx: &mut dyn LoginTx,
    ops: &[StoreOp],
    at: &[UnixTime],
    jobs: &[usize],
    out: &mut Together,
) {
    let takes: Vec<(usize, Take<'_>)> = jobs
        .iter()
        .filter_map(|&i| match &ops[i] {
            StoreOp::Verify {
                answers: Some(t), ..
            } => Some((i, (&t.state[..], &t.node[..], at[i]))),
            _ => None,
        })
        .collect();
    if !takes.is_empty() {
        let asked: Vec<Take<'_>> = takes.iter().map(|&(_, t)| t).collect();
        match per_job(tx.take_challenges(&asked), takes.len(), "challenges") {
            Ok(taken) => {
                for ((i, _), t) in takes.iter().zip(taken) {
                    if t.is_none() {
                        out[*i] = Some(Ok(Staged::Answer(StoreAnswer::Challenge(None))));
                    }
                }
            }
            Err(e) => fail_all(out, takes.iter().map(|&(i, _)| i), &e),
        }
    }

    let mut verdicts: Vec<Option<Verdict>> = vec![None; ops.len()];
    let (mut claims, mut claimers) = (Vec::new(), Vec::new());
    for &i in jobs {
        let StoreOp::Verify {
            code,
            window,
            tokens,
            ..
        } = &ops[i]
        else {
            continue;
        };
        if out[i].is_some() {
            continue;
        }
        match find(store, tokens, code, *window, at[i]) {
            Ok(Found::Claim { id, step }) => {
                claims.push((id, step));
                claimers.push(i);
            }
            Ok(Found::Not(v)) => verdicts[i] = Some(v),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    if !claims.is_empty() {
        match per_job(tx.claim_steps(&claims), claims.len(), "claims") {
            Ok(won) => {
                for ((&i, &(_, step)), w) in claimers.iter().zip(&claims).zip(won) {
                    verdicts[i] = Some(claimed(step, w));
                }
            }
            Err(e) => fail_all(out, claimers.iter().copied(), &e),
        }
    }

    for &i in jobs {
        let (
            StoreOp::Verify {
                user,
                lockout,
                denied,
                ..
            },
            Some(verdict),
        ) = (&ops[i], verdicts[i])
        else {
            continue;
        };
        out[i] = Some(settle(tx, user, verdict, *denied, lockout, at[i]).map(Staged::Answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::LockoutPolicy;
    use zeroize::Zeroizing;

    fn facts(user: &str) -> StoreOp {
        StoreOp::Facts { user: user.into() }
    }

    fn code(user: &str) -> StoreOp {
        StoreOp::Verify {
            user: user.into(),
            code: Zeroizing::new("123456".into()),
            window: 1,
            lockout: LockoutPolicy {
                denials: 3,
                reset_after: 60,
                unblock_after: 60,
            },
            tokens: std::sync::Arc::from([]),
            denied: false,
            answers: None,
        }
    }

    #[test]
    fn only_the_jobs_of_a_user_alone_in_the_burst_go_together() {
        let ops = [
            facts("ann"),
            code("bea"),
            facts("Cid"),
            code("CID"),
            StoreOp::ClaimBypass { user: "dov".into() },
            facts("dov"),
            StoreOp::Audit(crate::store::AuditRecord {
                at: 0,
                user: "eve".into(),
                result: crate::mfa::ResultCode::SuccessOathCodeVerified,
                accepted: true,
                mode: "totp".into(),
                server: "s".into(),
                client: "c".into(),
                client_ip: None,
                reason: None,
            }),
            code("eve"),
            StoreOp::TakeChallenge {
                state: vec![1; 20],
                node: "s".into(),
            },
        ];
        assert_eq!(
            alone(&ops),
            [true, true, false, false, false, false, false, true, false],
            "cid twice (names fold), dov with a bypass; an audit record does not count"
        );
    }
}
