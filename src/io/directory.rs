//! Password checks with a directory (`[primary] mode = "ldap"`), off the
//! loop: each in its own task, at most [`RUNNING`] at once and [`WAITING`]
//! in all; more are answered `Overloaded` at once rather than queued
//! without limit. Verdicts come back to the loop through a channel.
//!
//! Connections are kept per directory in a [`Pool`], replaced when a
//! reload changes how the directory is reached. A directory that fails is
//! logged when it starts failing, then at most every [`OUTAGE_LOG`] with
//! how many checks failed meanwhile, and once when it answers again; each
//! failure is also counted by the engine, by kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tracing::{error, info};

use crate::directory::auth::{Failure, Pool, Verdict};
use crate::directory::ldap::LdapFailure;
use crate::engine::{DirectoryCheck, Engine};

/// Checks running at once, at most: each holds two connections.
const RUNNING: usize = 16;
/// Checks running or waiting to, at most.
const WAITING: usize = 1024;
/// How often an outage is logged again while it lasts.
const OUTAGE_LOG: Duration = Duration::from_secs(30);

/// A directory's pool, and what its failures have been logged as.
#[derive(Clone)]
struct Source {
    pool: Arc<Pool>,
    outage: Arc<Mutex<Outage>>,
}

/// Runs the engine's directory checks.
pub(super) struct Checker {
    done_tx: mpsc::UnboundedSender<(u64, Verdict)>,
    done_rx: mpsc::UnboundedReceiver<(u64, Verdict)>,
    running: Arc<Semaphore>,
    /// Checks running or waiting to.
    waiting: Arc<AtomicUsize>,
    /// By directory name.
    sources: HashMap<String, Source>,
}

impl Checker {
    pub(super) fn new() -> Checker {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Checker {
            done_tx,
            done_rx,
            running: Arc::new(Semaphore::new(RUNNING)),
            waiting: Arc::new(AtomicUsize::new(0)),
            sources: HashMap::new(),
        }
    }

    /// Starts the checks the engine asks for and gives it the verdicts
    /// that came. Returns whether anything happened.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>, engine: &mut Engine, now: Instant) -> bool {
        let mut progressed = false;
        while let Some(check) = engine.poll_directory_check() {
            self.start(check);
            progressed = true;
        }
        while let Poll::Ready(Some((id, verdict))) = self.done_rx.poll_recv(cx) {
            engine.handle_directory(now, id, verdict);
            progressed = true;
        }
        progressed
    }

    fn start(&mut self, check: DirectoryCheck) {
        if self.waiting.load(Ordering::Relaxed) >= WAITING {
            let _ = (self.done_tx).send((check.id, Verdict::Failed(Failure::Overloaded)));
            return;
        }
        let source = self.source(&check);
        let waiting = Waiting::enter(self.waiting.clone());
        let (running, done) = (self.running.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let _waiting = waiting;
            let Ok(_running) = running.acquire().await else {
                return;
            };
            let deadline = tokio::time::Instant::from_std(check.deadline);
            if tokio::time::Instant::now() >= deadline {
                // Its login no longer waits: no bind nobody reads (and no
                // wrong password counted toward a lockout for nothing).
                let _ = done.send((check.id, Verdict::Failed(Failure::NoAnswer)));
                return;
            }
            let dir = &check.directory;
            let work = source.pool.check(dir, &check.user, &check.password);
            let result = match tokio::time::timeout_at(deadline, work).await {
                Ok(r) => r,
                Err(_) => Err(LdapFailure::Timeout {
                    name: dir.name.clone(),
                    what: "a password check",
                    after: dir.timeout,
                }),
            };
            let verdict = Verdict::of(&result);
            {
                let mut outage = source.outage.lock().unwrap_or_else(PoisonError::into_inner);
                match &result {
                    Ok(_) => outage.answered(&dir.name),
                    Err(e) => outage.failed(&dir.name, e),
                }
            }
            let _ = done.send((check.id, verdict));
        });
    }

    /// The pool for `check`'s directory: the one kept, unless a reload
    /// changed how that directory is reached.
    fn source(&mut self, check: &DirectoryCheck) -> Source {
        let dir = &check.directory;
        match self.sources.get(&dir.name) {
            Some(s) if s.pool.serves(dir) => s.clone(),
            _ => {
                let s = Source {
                    pool: Arc::new(Pool::new(dir)),
                    outage: Arc::default(),
                };
                self.sources.insert(dir.name.clone(), s.clone());
                s
            }
        }
    }
}

/// One check counted in [`Checker::waiting`] until it is dropped.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn enter(n: Arc<AtomicUsize>) -> Waiting {
        n.fetch_add(1, Ordering::Relaxed);
        Waiting(n)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A directory's failures, for the log.
#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    logged: Option<Instant>,
    /// Failures since the last line.
    held: u64,
    /// Failures since it started.
    total: u64,
}

impl Outage {
    fn failed(&mut self, name: &str, e: &LdapFailure) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.total += 1;
        if self.logged.is_some_and(|t| now < t + OUTAGE_LOG) {
            self.held += 1;
            return;
        }
        error!(
            directory = %name,
            error = %e,
            more = self.held,
            "cannot check passwords with the directory: its logins are refused until it answers"
        );
        self.logged = Some(now);
        self.held = 0;
    }

    fn answered(&mut self, name: &str) {
        if let Some(since) = self.since.take() {
            info!(
                directory = %name,
                failed = self.total,
                after = ?since.elapsed(),
                "the directory answers password checks again"
            );
        }
        *self = Outage::default();
    }
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .field("directories", &self.sources.len())
            .finish_non_exhaustive()
    }
}
