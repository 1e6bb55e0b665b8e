//! The store's threads: the database threads (as many as the store runs
//! transactions at once, each taking the batches queued for it, the jobs of
//! one user always on one of them) and the threads that check password and
//! PIN hashes off them.

use std::io;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::StoreJob;
use crate::store::LoginStore;
use crate::store::login::{self as jobs, StoreAnswer};

/// Jobs to the store workers (one queue per database thread: a job goes to
/// the thread of its shard), and their answers back, a batch per message:
/// one wake-up each way per loop turn and per transaction, not per job.
pub(super) type StoreChannels = (
    Vec<std::sync::mpsc::SyncSender<Vec<StoreJob>>>,
    mpsc::Receiver<Vec<(u64, StoreAnswer)>>,
);

/// `batch` split by database thread, in order within each.
pub(super) fn by_thread(batch: Vec<StoreJob>, threads: usize) -> Vec<Vec<StoreJob>> {
    if threads <= 1 {
        return vec![batch];
    }
    let mut parts: Vec<Vec<StoreJob>> = (0..threads).map(|_| Vec::new()).collect();
    for job in batch {
        parts[(job.shard % threads as u64) as usize].push(job);
    }
    parts
}

/// Batches queued for each database thread, at most. A store that falls
/// this far behind is failing: further jobs are answered as failed at once
/// (counted in `mfa_store_queue_full`), never buffered without limit.
const STORE_QUEUE: usize = 1024;

/// Answer batches from the store threads waiting for the loop, at most; a
/// store thread waits when the loop is this far behind.
const ANSWER_QUEUE: usize = 1024;

/// Threads that check password and PIN hashes (argon2id, milliseconds
/// each), so local logins never hold up a database thread.
const HASH_WORKERS: usize = 2;

/// Jobs after which a database thread stops taking more queued batches
/// into one transaction.
const STORE_BATCH: usize = 64;

/// Starts the store's threads; jobs go in, `(id, answer)` comes out.
///
/// As many database threads as the store runs transactions at once
/// ([`LoginStore::workers`]). SQLite has one: it writes one transaction at
/// a time anyway, and a second thread only added lock hand-offs and
/// wake-ups (about a quarter fewer logins per second with two). PostgreSQL
/// has one per pooled connection, each waiting on its own round trips. A
/// thread takes every job queued for it and runs them in one transaction;
/// the jobs about one user all go to one thread, in order. Password and PIN
/// checks leave it with their stored hash for the hash threads.
pub(super) fn store_workers(store: Arc<dyn LoginStore>) -> io::Result<StoreChannels> {
    let (ans_tx, ans_rx) = mpsc::channel(ANSWER_QUEUE);
    let (hash_tx, hash_rx) = std::sync::mpsc::channel::<(u64, jobs::HashCheck)>();
    let hash_rx = Arc::new(std::sync::Mutex::new(hash_rx));
    for i in 0..HASH_WORKERS {
        let (hash_rx, ans_tx) = (hash_rx.clone(), ans_tx.clone());
        spawn_worker(format!("hash-{i}"), move || {
            loop {
                let next = match hash_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((id, check)) = next else { return };
                if ans_tx.blocking_send(vec![(id, check.check())]).is_err() {
                    return;
                }
            }
        })?;
    }
    let mut senders = Vec::new();
    for i in 0..store.workers().max(1) {
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Vec<StoreJob>>(STORE_QUEUE);
        senders.push(job_tx);
        let (store, ans_tx, hash_tx) = (store.clone(), ans_tx.clone(), hash_tx.clone());
        spawn_worker(format!("store-{i}"), move || {
            database_thread(store.as_ref(), job_rx, ans_tx, hash_tx)
        })?;
    }
    Ok((senders, ans_rx))
}

/// A database thread: runs the batches queued for it until its queue
/// closes, each in one transaction.
fn database_thread(
    store: &dyn LoginStore,
    job_rx: std::sync::mpsc::Receiver<Vec<StoreJob>>,
    ans_tx: mpsc::Sender<Vec<(u64, StoreAnswer)>>,
    hash_tx: std::sync::mpsc::Sender<(u64, jobs::HashCheck)>,
) {
    // Wait for one batch, then take whatever else is queued: under load
    // one wake-up and one commit serve many logins.
    while let Ok(mut jobs) = job_rx.recv() {
        while jobs.len() < STORE_BATCH {
            match job_rx.try_recv() {
                Ok(more) => jobs.extend(more),
                Err(_) => break,
            }
        }
        let mut ids = Vec::with_capacity(jobs.len());
        let mut ops = Vec::with_capacity(jobs.len());
        let mut at = Vec::with_capacity(jobs.len());
        for j in jobs {
            ids.push((j.id, j.wanted));
            ops.push(j.op);
            at.push(j.at);
        }
        let outcomes = jobs::stage_batch(store, &ops, &at);
        let mut answers = Vec::with_capacity(ids.len());
        for ((id, wanted), outcome) in ids.into_iter().zip(outcomes) {
            match outcome {
                jobs::Outcome::Answer(a) if wanted => answers.push((id, a)),
                jobs::Outcome::Answer(_) => {}
                jobs::Outcome::Hash(check) => {
                    if hash_tx.send((id, check)).is_err() {
                        return;
                    }
                }
            }
        }
        if !answers.is_empty() && ans_tx.blocking_send(answers).is_err() {
            return;
        }
    }
}

/// Starts a store thread; `serve` refuses to start without it.
fn spawn_worker(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the {name} thread: {e}")))
}
