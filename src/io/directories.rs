//! `serve`'s directory syncs: each `[[directory]]` at start and every
//! `interval` after, on a thread of its own (a sync makes blocking store
//! calls and runs its own LDAP runtime), never the packet loop's. A reload
//! hands over the new sources: a source that is new runs at once, the
//! others keep their schedule and run with their new settings. A sync that
//! failed runs again after `RETRY` (or its interval, if shorter).
//!
//! Every sync writes one summary line (and its problems, a few at most) to
//! the log, and its figures to [`SyncStatus`], which `/metrics` shows.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::Config;
use crate::directory::orphans::{Orphans, orphans};
use crate::directory::sync::{self, Options, Report};
use crate::store::Store;

/// A failed sync runs again after this, or after its interval if shorter.
const RETRY: Duration = Duration::from_secs(300);
/// Problems of one sync written to the log; the rest are counted.
const PROBLEMS_LOGGED: usize = 10;

/// The syncs' figures, by source, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SyncStatus {
    by_source: Mutex<HashMap<String, Figures>>,
    /// Users of sources no longer configured ([`orphans`]).
    orphans: Mutex<Vec<Orphans>>,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    ok: u64,
    failed: u64,
    seconds: f64,
    users: u64,
    entries: u64,
    problems: u64,
    added: u64,
    changed: u64,
    enabled: u64,
    disabled: u64,
    removed: u64,
    last_success: i64,
}

impl SyncStatus {
    fn record(&self, name: &str, result: &Result<Report, sync::SyncError>, took: Duration) {
        let mut map = self
            .by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let f = map.entry(name.to_owned()).or_default();
        f.seconds = took.as_secs_f64();
        match result {
            Ok(r) => {
                let p = &r.plan;
                f.ok += 1;
                f.users = p.listed as u64;
                f.entries = r.entries as u64;
                f.problems = r.problems.len() as u64;
                f.added += p.added as u64;
                f.changed += p.changed as u64;
                f.enabled += p.enabled as u64;
                f.disabled += p.disabled as u64;
                f.removed += p.removed as u64;
                f.last_success = super::unix_now();
            }
            Err(_) => f.failed += 1,
        }
    }

    /// Users of sources no longer configured, by source and state.
    fn render_orphans(&self, o: &mut String) {
        let orphans = self.orphans.lock().unwrap_or_else(PoisonError::into_inner);
        if orphans.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "# HELP mfa_directory_orphaned_users Users of a [[directory]] no longer configured: nothing syncs them.\n# TYPE mfa_directory_orphaned_users gauge"
        );
        for x in orphans.iter() {
            for (state, n) in [("enabled", x.enabled), ("disabled", x.disabled)] {
                let _ = writeln!(
                    o,
                    "mfa_directory_orphaned_users{{directory=\"{}\",state=\"{state}\"}} {n}",
                    x.source
                );
            }
        }
    }

    /// Looks for users of sources `config` no longer has; says so in the
    /// log when that changed since the last look (at start, after a
    /// reload), and keeps the figures for `/metrics`.
    fn look_for_orphans(&self, store: &dyn Store, config: &Config) {
        let found = match store.users() {
            Ok(users) => orphans(&users, &config.directories),
            Err(e) => {
                warn!(error = %e, "cannot read the users to look for those of sources no longer configured");
                return;
            }
        };
        let mut kept = self.orphans.lock().unwrap_or_else(PoisonError::into_inner);
        if *kept != found {
            for x in &found {
                warn!("{}", x.warning());
            }
        }
        *kept = found;
    }

    /// The Prometheus text of every source's figures.
    pub(crate) fn render(&self, o: &mut String) {
        self.render_orphans(o);
        let map = self
            .by_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return;
        }
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        let gauge =
            |o: &mut String, name: &str, help: &str, kind: &str, v: &dyn Fn(&Figures) -> String| {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for n in &names {
                    let _ = writeln!(o, "{name}{{directory=\"{n}\"}} {}", v(&map[*n]));
                }
            };
        gauge(
            o,
            "mfa_directory_sync_seconds",
            "How long the last sync of the source took.",
            "gauge",
            &|f| format!("{:.3}", f.seconds),
        );
        gauge(
            o,
            "mfa_directory_users",
            "Users in the source's scope at its last successful sync.",
            "gauge",
            &|f| f.users.to_string(),
        );
        gauge(
            o,
            "mfa_directory_entries",
            "Entries the source's search returned at its last successful sync.",
            "gauge",
            &|f| f.entries.to_string(),
        );
        gauge(
            o,
            "mfa_directory_problems",
            "Entries the last successful sync left out or could not use in full.",
            "gauge",
            &|f| f.problems.to_string(),
        );
        gauge(
            o,
            "mfa_directory_last_success_timestamp_seconds",
            "When the source last synced without an error (Unix time).",
            "gauge",
            &|f| f.last_success.to_string(),
        );
        let _ = writeln!(
            o,
            "# HELP mfa_directory_syncs_total Syncs run, by result.\n# TYPE mfa_directory_syncs_total counter"
        );
        for n in &names {
            let f = &map[*n];
            let _ = writeln!(
                o,
                "mfa_directory_syncs_total{{directory=\"{n}\",result=\"ok\"}} {}",
                f.ok
            );
            let _ = writeln!(
                o,
                "mfa_directory_syncs_total{{directory=\"{n}\",result=\"failed\"}} {}",
                f.failed
            );
        }
        let _ = writeln!(
            o,
            "# HELP mfa_directory_changes_total Users changed by syncs, by kind of change.\n# TYPE mfa_directory_changes_total counter"
        );
        for n in &names {
            let f = &map[*n];
            for (kind, v) in [
                ("added", f.added),
                ("changed", f.changed),
                ("enabled", f.enabled),
                ("disabled", f.disabled),
                ("removed", f.removed),
            ] {
                let _ = writeln!(
                    o,
                    "mfa_directory_changes_total{{directory=\"{n}\",change=\"{kind}\"}} {v}"
                );
            }
        }
    }
}

/// The sync thread: its configuration (the sources, and `[enrollment]`
/// for the invitations of `invite = true`) is replaced through `update`;
/// it ends when the scheduler is dropped.
#[derive(Debug)]
pub(crate) struct Scheduler {
    sources: mpsc::Sender<Config>,
    pub(crate) status: Arc<SyncStatus>,
}

impl Scheduler {
    pub(crate) fn spawn(store: Arc<dyn Store>, config: Config) -> std::io::Result<Scheduler> {
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(SyncStatus::default());
        let figures = status.clone();
        std::thread::Builder::new()
            .name("directory-sync".into())
            .spawn(move || schedule(store.as_ref(), config, &rx, &figures))?;
        Ok(Scheduler {
            sources: tx,
            status,
        })
    }

    /// A reload's configuration.
    pub(crate) fn update(&self, config: Config) {
        let _ = self.sources.send(config);
    }
}

fn schedule(
    store: &dyn Store,
    mut config: Config,
    updates: &mpsc::Receiver<Config>,
    status: &SyncStatus,
) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    status.look_for_orphans(store, &config);
    loop {
        let sources = &config.directories;
        let now = Instant::now();
        for d in sources {
            due.entry(d.name.clone()).or_insert(now);
        }
        due.retain(|name, _| sources.iter().any(|d| &d.name == name));
        let next = sources
            .iter()
            .min_by_key(|d| due[&d.name])
            .map(|d| (d.name.clone(), due[&d.name]));
        let wait = next.as_ref().map_or(Duration::from_secs(3600), |(_, at)| {
            at.saturating_duration_since(now)
        });
        match updates.recv_timeout(wait) {
            Ok(new) => {
                config = new;
                status.look_for_orphans(store, &config);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let Some((name, _)) = next else { continue };
        let Some(dir) = sources.iter().find(|d| d.name == name) else {
            continue;
        };
        let started = Instant::now();
        let result = sync::run(
            dir,
            store,
            Options::default(),
            super::unix_now(),
            &mut |_| {},
        );
        status.record(&dir.name, &result, started.elapsed());
        let after = match &result {
            Ok(report) => {
                log_report(report);
                if let Some(Err(e)) =
                    sync::invite_added(&config, dir, store, report, super::unix_now())
                {
                    error!("directory {}: no enrollment invitation sent: {e}", dir.name);
                }
                dir.interval
            }
            Err(e) => {
                error!("{e}; the users stay as they are");
                dir.interval.min(RETRY)
            }
        };
        due.insert(name, Instant::now() + after);
        // An administrator may have removed some since.
        status.look_for_orphans(store, &config);
    }
}

fn log_report(r: &Report) {
    info!("{}", r.summary());
    for p in r.problems.iter().take(PROBLEMS_LOGGED) {
        warn!("directory {}: {p}", r.directory);
    }
    if r.problems.len() > PROBLEMS_LOGGED {
        warn!(
            "directory {}: {} more problems (`mfa-proxy directory sync --dry-run` lists them all)",
            r.directory,
            r.problems.len() - PROBLEMS_LOGGED
        );
    }
}
