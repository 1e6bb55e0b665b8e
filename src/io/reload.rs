//! The shell's side of a reload: the difference logged, the sockets the
//! engine's plan needs bound *before* the engine takes the configuration,
//! then the engine reloaded between two packets, and the sockets it no
//! longer needs closed.
//!
//! A listener that cannot be bound (its address is taken, or not this
//! host's) fails the listener part only: the error names the address,
//! the listeners stay as they were (the old `auth_listen` and
//! `acct_listen` stay in force, and are compared against at the next
//! reload), the rest is applied, and the reload counts as not successful.
//! An upstream socket that cannot be opened (no file descriptor left)
//! refuses the whole reload. Keys that need a restart are logged and kept
//! (see `config::in_force`); the dictionary is always the one the proxy
//! started with. The HTTP listener takes the TLS certificate read by the
//! reload for its next connections.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tracing::{error, info, warn};

use super::kernel_drops::name_of;
use super::{Shell, listener_socket, upstream_socket};
use crate::config::{self, Config};
use crate::radius::dict::Dictionary;

/// The configuration's generation and last reload, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadStatus {
    /// 1 at start, one more per reload applied.
    pub generation: u64,
    /// When the configuration was loaded or a reload last tried (Unix
    /// seconds).
    pub last_at: i64,
    /// Whether that reload was applied in full.
    pub last_success: bool,
}

impl ReloadStatus {
    pub(super) fn started(now: i64) -> ReloadStatus {
        ReloadStatus {
            generation: 1,
            last_at: now,
            last_success: true,
        }
    }

    /// A reload refused: nothing changed.
    pub(super) fn refused(&mut self, now: i64) {
        self.last_at = now;
        self.last_success = false;
    }

    fn applied(&mut self, now: i64, in_full: bool) {
        self.generation += 1;
        self.last_at = now;
        self.last_success = in_full;
    }
}

impl Shell {
    /// Applies `new` (loaded and validated by the caller); see the module
    /// documentation.
    pub(super) fn reload(&mut self, new: Config, dictionary: Arc<Dictionary>) {
        let now = super::unix_now();
        let mut changes = config::diff(&self.config, &new);
        // The dictionary needs a restart: the one in force stays. The diff
        // sees a new path; an edited file is seen here.
        let same_path = self.config.server.dictionary == new.server.dictionary;
        if same_path && *dictionary != *self.dictionary {
            changes.push(config::Change::NeedsRestart {
                key: "server.dictionary",
            });
        }
        let mut next = config::in_force(&self.config, &new);
        // `[groups]` names an attribute of the dictionary in force, which a
        // reload does not change: one it lacks refuses the reload, or every
        // group policy would silently stop matching.
        if let Some(g) = &next.groups {
            if let Err(e) = crate::engine::GroupSource::resolve(g, &self.dictionary) {
                error!(
                    "reload refused, the configuration in force stays: {e} (a new dictionary needs a restart)"
                );
                self.status.refused(now);
                return;
            }
        }
        let plan = self.engine.reload_plan(&next);
        let mut listeners = Vec::new();
        let mut in_full = true;
        for (addr, _) in &plan.listeners {
            match listener_socket(*addr).and_then(UdpSocket::from_std) {
                Ok(s) => listeners.push(s),
                Err(e) => {
                    error!(
                        "reload: {e}: the listeners stay as they were (auth_listen and acct_listen \
                         as before); the rest of the configuration is applied"
                    );
                    listeners.clear();
                    next.server.auth_listen = self.config.server.auth_listen.clone();
                    next.server.acct_listen = self.config.server.acct_listen.clone();
                    in_full = false;
                    break;
                }
            }
        }
        let plan = self.engine.reload_plan(&next);
        let upstream = match plan
            .upstream_sockets
            .iter()
            .map(|f| upstream_socket(*f).and_then(UdpSocket::from_std))
            .collect::<std::io::Result<Vec<_>>>()
        {
            Ok(u) => u,
            Err(e) => {
                error!(
                    "reload refused, the configuration in force stays: cannot open an upstream socket: {e}"
                );
                self.status.refused(now);
                return;
            }
        };
        for w in &next.warnings {
            warn!("{w}");
        }
        for c in &changes {
            if c.is_live() {
                info!("reload: {c}");
            } else {
                warn!("reload: {c}");
            }
        }
        let done = self
            .engine
            .reload(&next, self.dictionary.clone(), Instant::now());
        for (i, s) in done.listeners.into_iter().zip(listeners) {
            info!(address = %name_of(s.local_addr()), "listening");
            let i = usize::from(i);
            if self.listeners.len() <= i {
                self.listeners.resize_with(i + 1, || None);
            }
            self.listeners[i] = Some(s);
        }
        for (i, s) in done.upstream_sockets.into_iter().zip(upstream) {
            let i = usize::from(i);
            if self.upstream.len() == i {
                self.upstream.push(s);
            } else {
                error!("reload: upstream socket {i} out of order: not used");
            }
        }
        self.deliverer.set_notify(next.notify.clone());
        if let Some(syncs) = &self.syncs {
            syncs.update(next.clone());
        }
        if let Some(portal) = &self.portal {
            portal.reconfigure(&next);
        }
        if let Some(tls) = &self.tls {
            tls.send_replace(next.server.http_tls.clone().map(|t| t.0));
        }
        self.config = next;
        self.close_listeners();
        self.refresh_udp();
        self.status.applied(now, in_full);
        info!(
            generation = self.status.generation,
            changes = changes.len(),
            restart_needed = changes.iter().filter(|c| !c.is_live()).count(),
            "configuration reloaded"
        );
    }

    /// Closes the listeners the engine no longer needs.
    pub(super) fn close_listeners(&mut self) {
        let mut closed = false;
        while let Some(i) = self.engine.poll_closed_listener() {
            if let Some(s) = self
                .listeners
                .get_mut(usize::from(i))
                .and_then(Option::take)
            {
                info!(address = %name_of(s.local_addr()), "closed a listener the configuration no longer names");
                closed = true;
            }
        }
        if closed {
            self.refresh_udp();
        }
    }

    /// The sockets whose kernel drops `/metrics` shows: those open now.
    fn refresh_udp(&self) {
        self.udp.set(
            self.listeners
                .iter()
                .flatten()
                .map(|s| (name_of(s.local_addr()), s.as_raw_fd())),
            self.upstream.iter().map(AsRawFd::as_raw_fd),
        );
    }
}
