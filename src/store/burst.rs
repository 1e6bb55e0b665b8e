//! A burst of login-path jobs in one store transaction
//! ([`stage_batch`]): run again when it loses a conflict, answered as failed
//! (and logged, a few lines at a time) when it cannot commit, and the end
//! of an outage said once. A burst's challenges and audit records, which
//! nothing in it reads back, are written in one statement each; its
//! facts, challenges taken and steps claimed go together where they can
//! ([`together`]).

use super::login::{HashCheck, Outcome, Staged, StoreAnswer, StoreOp, challenge_seal, stage};
use super::together::together;
use super::{AuditRecord, LoginStore, Retry, StoreError, StoredChallenge, UnixTime};

/// Runs a burst of jobs in one store transaction. Password and PIN hashes
/// are read inside it and come back as [`Outcome::Hash`], so the slow argon2
/// work never holds the database. If the commit fails, every job in the
/// burst fails closed, because none of what it wrote was kept.
///
/// `at[i]` is when the engine asked `ops[i]`: each is decided at that time
/// (code windows, lockouts, blocks, bypass expiry), not on the store's clock.
pub fn stage_batch(store: &dyn LoginStore, ops: &[StoreOp], at: &[UnixTime]) -> Vec<Outcome> {
    debug_assert_eq!(ops.len(), at.len());
    let attempt = || {
        store.begin().and_then(|mut tx| {
            // The writes nobody reads back within the burst go in one
            // statement each: its challenges first (an answer later in the
            // burst takes its own), its audit records last.
            let (puts, records) = grouped(store, ops, at);
            let put = (!puts.is_empty()).then(|| tx.put_challenges(&puts));
            // The facts and code checks that can go together first, in a
            // statement per kind; the other jobs then run in turn.
            let done = together(store, &mut *tx, ops, at);
            let mut staged: Vec<Result<Staged, StoreError>> = ops
                .iter()
                .zip(at)
                .zip(done)
                .map(|((op, &now), done)| match (done, op) {
                    (Some(s), _) => s,
                    (None, StoreOp::PutChallenge { .. } | StoreOp::Audit(_)) => Ok(Staged::Grouped),
                    (None, _) => stage(store, &mut *tx, op, now),
                })
                .collect();
            let audited = (!records.is_empty()).then(|| tx.append_audits(&records));
            for (op, s) in ops.iter().zip(staged.iter_mut()) {
                let group = match op {
                    StoreOp::PutChallenge { .. } => &put,
                    StoreOp::Audit(_) => &audited,
                    _ => continue,
                };
                *s = match group {
                    Some(Err(e)) => Err(StoreError::database(e.to_string(), e.retry())),
                    _ => Ok(Staged::Answer(StoreAnswer::Done)),
                };
            }
            // A conflict inside one job rolled the whole transaction back:
            // the batch runs again, like one whose commit lost.
            let conflict = staged
                .iter()
                .position(|s| matches!(s, Err(e) if e.retry() == Retry::Now));
            if let Some(Err(e)) = conflict.map(|i| staged.swap_remove(i)) {
                return Err(e);
            }
            tx.commit().map(|()| staged)
        })
    };
    let mut staged = attempt();
    for _ in 1..BATCH_ATTEMPTS {
        match &staged {
            Err(e) if e.retry() == Retry::Now => staged = attempt(),
            _ => break,
        }
    }
    let staged = match staged {
        Ok(s) => {
            log_recovered();
            s
        }
        Err(e) => {
            log_failed_commit(&e, ops.len());
            return ops
                .iter()
                .map(|_| Outcome::Answer(StoreAnswer::Failed))
                .collect();
        }
    };
    ops.iter()
        .zip(staged)
        .map(|(op, s)| match (s, op) {
            (Ok(Staged::Answer(a)), _) => Outcome::Answer(a),
            (Ok(Staged::Hash(hash)), StoreOp::Password { password, .. }) => {
                Outcome::Hash(HashCheck {
                    typed: password.clone(),
                    hash,
                    pin: false,
                })
            }
            (Ok(Staged::Hash(hash)), StoreOp::Pin { pin, .. }) => Outcome::Hash(HashCheck {
                typed: pin.clone(),
                hash,
                pin: true,
            }),
            // Every grouped job was given its group's result above.
            (Ok(Staged::Hash(_) | Staged::Grouped), _) => Outcome::Answer(StoreAnswer::Failed),
            (Err(e), op) => {
                tracing::error!(error = %e, op = ?op, "store failure: failing closed");
                Outcome::Answer(StoreAnswer::Failed)
            }
        })
        .collect()
}

/// How often a batch that lost to a concurrent transaction is run, at
/// most: it was rolled back whole, so running it again is safe.
const BATCH_ATTEMPTS: usize = 3;

/// The store's failures since it last worked: when they began, when one
/// was last logged, and how many batches failed (in all, and since that
/// line).
struct Failing {
    since: std::time::Instant,
    logged: std::time::Instant,
    /// The last failure: recovery is said once a while has passed since
    /// (with several database threads, one may fail while another works).
    last: std::time::Instant,
    failed: u64,
    held: u64,
}

/// How long after the last failure a commit that works ends an outage.
const RECOVERED_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

static FAILING: std::sync::Mutex<Option<Failing>> = std::sync::Mutex::new(None);
/// Whether [`FAILING`] holds anything: a commit that works looks here
/// only, without the lock.
static HAS_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs a failed commit: at once the first time, then at most every ten
/// seconds with how many failed since, as a lost or broken database fails
/// every batch at the request rate.
fn log_failed_commit(e: &StoreError, jobs: usize) {
    use std::time::{Duration, Instant};
    let mut failing = FAILING.lock().unwrap_or_else(|p| p.into_inner());
    HAS_FAILED.store(true, std::sync::atomic::Ordering::Release);
    let now = Instant::now();
    match failing.as_mut() {
        Some(f) if now.duration_since(f.logged) < Duration::from_secs(10) => {
            f.failed += 1;
            f.held += 1;
            f.last = now;
        }
        Some(f) => {
            tracing::error!(error = %e, jobs, more = f.held, "store commit failed: failing closed");
            (f.logged, f.held, f.last) = (now, 0, now);
            f.failed += 1;
        }
        None => {
            tracing::error!(error = %e, jobs, more = 0, "store commit failed: failing closed");
            *failing = Some(Failing {
                since: now,
                logged: now,
                last: now,
                failed: 1,
                held: 0,
            });
        }
    }
}

/// A commit worked: if the ones before failed, say that it is over.
fn log_recovered() {
    use std::sync::atomic::Ordering;
    if !HAS_FAILED.load(Ordering::Acquire) {
        return;
    }
    let mut failing = FAILING.lock().unwrap_or_else(|p| p.into_inner());
    if failing
        .as_ref()
        .is_some_and(|f| f.last.elapsed() < RECOVERED_AFTER)
    {
        return;
    }
    HAS_FAILED.store(false, Ordering::Release);
    if let Some(f) = failing.take() {
        tracing::info!(
            failed_batches = f.failed,
            seconds = f.since.elapsed().as_secs(),
            "the store works again: logins are served"
        );
    }
}

/// A burst's challenges (sealed) and audit records (stamped), for
/// [`LoginTx::put_challenges`] and [`LoginTx::append_audits`].
fn grouped(
    store: &dyn LoginStore,
    ops: &[StoreOp],
    at: &[UnixTime],
) -> (Vec<StoredChallenge>, Vec<AuditRecord>) {
    let (mut puts, mut records) = (Vec::new(), Vec::new());
    for (op, &now) in ops.iter().zip(at) {
        match op {
            StoreOp::PutChallenge {
                state,
                node,
                user,
                expires_at,
                login,
            } => puts.push(StoredChallenge {
                state: state.clone(),
                node: node.clone(),
                user: user.clone(),
                expires_at: *expires_at,
                sealed: store.seal(&challenge_seal(state), login),
            }),
            StoreOp::Audit(rec) => {
                let mut rec = rec.clone();
                if rec.at == 0 {
                    rec.at = now;
                }
                records.push(rec);
            }
            _ => {}
        }
    }
    (puts, records)
}
