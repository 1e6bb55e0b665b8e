//! Reload: a new configuration applied between two packets (SIGHUP).
//!
//! Clients, upstreams, listeners, policies, providers, texts, lockout and
//! `[proxy]` change without a packet lost; what is in flight finishes under
//! the configuration it started with. That is by construction, not by
//! bookkeeping at reload time: nothing in flight refers to a table by
//! index.
//!
//! - **Clients.** A request or login holds an `Arc` of the client entry
//!   that authenticated it ([`ClientRef`](super::clients::ClientRef)), so
//!   its answer is signed with that secret even if a reload changed or
//!   removed the client meanwhile; the old entry is freed with the last
//!   thing that holds it. An unchanged client keeps its entry. A challenge
//!   answer belongs to its login when it comes from the client of the same
//!   *name*, and is answered with the entry that authenticated it.
//! - **Upstreams.** A request sent upstream is keyed by (socket,
//!   destination address, identifier), RADIUS's own identifier space, and
//!   holds an `Arc` of the upstream's configuration as it was sent: the
//!   reply is matched and checked with that secret, retransmissions follow
//!   those timers, whether the upstream was since reordered, changed or
//!   removed. Health and counters live in the list in file order, found by
//!   a stable id; an upstream keeps its id, and so its health, while it is
//!   the same server (name, addresses and secret), and its counters while
//!   it has the same name. The set of upstreams a request already tried is
//!   a bit set of places in the list, mapped onto the new list here.
//! - **Logins.** A login holds the [`Settings`] in force when it started
//!   (`[mfa]` and texts, policies, `[groups]`, lockout, providers): a reload
//!   changes the logins that start after it; a challenge outstanding ends
//!   under the plan, texts, attempts and provider it began with. A
//!   delivery carries its provider, and a callback is checked with the key
//!   of the provider its verification went through.
//! - **Listeners.** [`SocketRef::Listener`] indices only grow. A listener
//!   the new file no longer names stops taking requests at once (counted in
//!   `drop_listener_closed`) and is *draining*: it still sends the answers
//!   of requests received on it, and is closed (reported by
//!   [`Engine::poll_closed_listener`]) when the duplicate cache holds no
//!   request in flight from it. A listener named again before then is
//!   taken back as it is. New addresses are in the [`ReloadPlan`]: the
//!   shell binds them first, and if one cannot be bound applies the reload
//!   with the listeners it has (the old listener configuration stays in
//!   force, and says so in the log).
//! - **Upstream sockets** are only ever added (a new address family, a
//!   larger `upstream_sockets`); a smaller count stops using the extra
//!   sockets, which stay open for the late replies they may still get.
//!
//! Keys that need a restart (see `config::in_force`) are not applied:
//! `[primary] mode`, `[mfa] enabled` and `[server] name` keep the values
//! the engine started with, whatever `new` says. The dictionary is the one
//! the shell passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::login::Settings;
use super::rewrite::CryptTable;
use super::upstream::Health;
use super::warn::Topic;
use super::{Engine, Family, ListenerKind, UpstreamRt, UpstreamStats};
use crate::config::{self, Config};
use crate::radius::dict::Dictionary;

/// Whether a listener is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListenerState {
    Open,
    /// Removed by a reload: takes no request, still sends the answers of
    /// those in flight.
    Draining,
    /// Its socket may be closed.
    Closed,
}

/// What a reload to a configuration would open: the shell binds these
/// first, then calls [`Engine::reload`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Listener addresses no open or draining listener has.
    pub listeners: Vec<(SocketAddr, ListenerKind)>,
    /// New upstream-facing sockets (unbound, ephemeral port).
    pub upstream_sockets: Vec<Family>,
}

/// What a reload opened, in the order of its [`ReloadPlan`]: the
/// [`SocketRef`](super::SocketRef) indices the shell's new sockets take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub listeners: Vec<u16>,
    pub upstream_sockets: Vec<u16>,
}

/// The listeners a configuration names: auth first, then accounting.
pub(super) fn wanted_listeners(config: &Config) -> Vec<(SocketAddr, ListenerKind)> {
    let auth = config
        .server
        .auth_listen
        .iter()
        .map(|a| (*a, ListenerKind::Auth));
    let acct = config
        .server
        .acct_listen
        .iter()
        .map(|a| (*a, ListenerKind::Acct));
    auth.chain(acct).collect()
}

/// The address families the upstreams of `list` need, in order of first use.
fn families(list: &[config::Upstream]) -> Vec<Family> {
    let mut out = Vec::new();
    for u in list {
        for a in std::iter::once(&u.address).chain(u.acct_address.as_ref()) {
            let f = Family::of(a);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

impl Engine {
    /// What [`Engine::reload`] of `new` would open.
    pub fn reload_plan(&self, new: &Config) -> ReloadPlan {
        let wanted = wanted_listeners(new);
        let listeners = wanted
            .iter()
            .zip(self.match_listeners(&wanted))
            .filter(|(_, m)| m.is_none())
            .map(|(w, _)| *w)
            .collect();
        ReloadPlan {
            listeners,
            upstream_sockets: self.missing_sockets(&new.upstreams, new.proxy.upstream_sockets),
        }
    }

    /// Applies `new` (see the module documentation). Returns where the
    /// sockets of the [`ReloadPlan`] of `new` go; listeners to close come
    /// out of [`Engine::poll_closed_listener`], now or once drained.
    pub fn reload(&mut self, new: &Config, dictionary: Arc<Dictionary>, now: Instant) -> Reloaded {
        self.proxy = new.proxy.clone();
        self.dedup
            .set_limits(new.proxy.dedup_window, new.proxy.dedup_max_entries);
        self.clients.replace(&new.clients);
        self.set_upstreams(&new.upstreams, now);
        let upstream_sockets = self.add_upstream_sockets(&new.upstreams);
        let listeners = self.set_listeners(new);
        self.logins.settings = Arc::new(Settings::new(new, &dictionary));
        self.crypt = CryptTable::from_dictionary(&dictionary);
        self.dictionary = dictionary;
        let (clients, upstreams) = (&self.clients, &self.upstreams);
        self.throttle.retain(|t| match *t {
            Topic::ClientUnsigned(id) | Topic::ClientBadSignature(id) => clients.has_id(id),
            Topic::UpstreamUnsigned(id) | Topic::UpstreamForged(id) => {
                upstreams.iter().any(|u| u.id == id)
            }
            Topic::NoUpstream
            | Topic::StoreUnavailable
            | Topic::StoreJobLost
            | Topic::AuditUnrecorded => true,
        });
        // Identifier pools of addresses no upstream has any more, once
        // nothing pending holds an identifier of theirs.
        self.ids.retain(|(_, dest), pool| {
            !pool.is_empty()
                || upstreams
                    .iter()
                    .any(|u| u.cfg.address == *dest || u.cfg.acct_address == Some(*dest))
        });
        self.close_drained();
        Reloaded {
            listeners,
            upstream_sockets,
        }
    }

    /// The next listener whose socket the shell may close.
    pub fn poll_closed_listener(&mut self) -> Option<u16> {
        self.closed_listeners.pop_front()
    }

    /// Closes the draining listeners with no request in flight.
    pub(super) fn close_drained(&mut self) {
        for (i, state) in self.listener_state.iter_mut().enumerate() {
            let i = i as u16;
            if *state == ListenerState::Draining && self.dedup.in_flight_on(i) == 0 {
                *state = ListenerState::Closed;
                self.closed_listeners.push_back(i);
            }
        }
    }

    /// For each wanted listener, the open or draining one it continues.
    fn match_listeners(&self, wanted: &[(SocketAddr, ListenerKind)]) -> Vec<Option<usize>> {
        let mut taken = vec![false; self.listeners.len()];
        wanted
            .iter()
            .map(|(addr, _)| {
                let i = (0..self.listeners.len()).find(|&i| {
                    !taken[i]
                        && self.listener_state[i] != ListenerState::Closed
                        && self.listeners[i].0 == *addr
                })?;
                taken[i] = true;
                Some(i)
            })
            .collect()
    }

    /// Makes `new`'s listeners the open ones; returns the indices of those
    /// added, in [`ReloadPlan`] order.
    fn set_listeners(&mut self, new: &Config) -> Vec<u16> {
        let wanted = wanted_listeners(new);
        let matched = self.match_listeners(&wanted);
        let mut keep = vec![false; self.listeners.len()];
        let mut opened = Vec::new();
        for (&(addr, kind), m) in wanted.iter().zip(matched) {
            match m {
                Some(i) => {
                    keep[i] = true;
                    self.listeners[i].1 = kind;
                    self.listener_state[i] = ListenerState::Open;
                }
                None => {
                    opened.push(self.listeners.len() as u16);
                    self.listeners.push((addr, kind));
                    self.listener_state.push(ListenerState::Open);
                }
            }
        }
        for (i, kept) in keep.into_iter().enumerate() {
            if !kept && self.listener_state[i] == ListenerState::Open {
                self.listener_state[i] = ListenerState::Draining;
            }
        }
        opened
    }

    /// The sockets `list` needs, `per_family` per address family, that are
    /// not open yet.
    fn missing_sockets(&self, list: &[config::Upstream], per_family: u16) -> Vec<Family> {
        let mut out = Vec::new();
        for f in families(list) {
            let have = self.sockets.iter().filter(|&&s| s == f).count();
            out.extend(std::iter::repeat_n(
                f,
                usize::from(per_family).saturating_sub(have),
            ));
        }
        out
    }

    /// Adds the sockets `list` needs under the current `[proxy]`; returns
    /// their indices. The sockets in use are the first `upstream_sockets`
    /// of each family.
    pub(super) fn add_upstream_sockets(&mut self, list: &[config::Upstream]) -> Vec<u16> {
        let per_family = self.proxy.upstream_sockets;
        let mut opened = Vec::new();
        for f in self.missing_sockets(list, per_family) {
            opened.push(self.sockets.len() as u16);
            self.sockets.push(f);
        }
        for f in [Family::V4, Family::V6] {
            self.family_sockets[f as usize] = (0..self.sockets.len() as u16)
                .filter(|&s| self.sockets[usize::from(s)] == f)
                .take(usize::from(per_family))
                .collect();
        }
        opened
    }

    /// Makes `list` the upstreams, in its order, keeping the id and health
    /// of each that is the same server and the counters of each of the same
    /// name; maps the upstreams each pending request tried onto the new
    /// list.
    pub(super) fn set_upstreams(&mut self, list: &[config::Upstream], now: Instant) {
        let old = std::mem::take(&mut self.upstreams);
        let mut next = Vec::with_capacity(list.len());
        for c in list {
            let kept = old.iter().find(|o| o.cfg.name == c.name).map(|o| {
                let keys = config::diff::upstream_keys(&o.cfg, c);
                (o, keys)
            });
            let rt = match kept {
                Some((o, keys)) => {
                    let same_server = !keys
                        .iter()
                        .any(|k| matches!(*k, "address" | "acct_address" | "secret"));
                    UpstreamRt {
                        id: if same_server {
                            o.id
                        } else {
                            self.upstream_id()
                        },
                        cfg: if keys.is_empty() {
                            o.cfg.clone()
                        } else {
                            Arc::new(c.clone())
                        },
                        health: if same_server {
                            o.health.clone()
                        } else {
                            Health::new(now)
                        },
                        stats: o.stats.clone(),
                        socket_cursor: o.socket_cursor,
                    }
                }
                None => UpstreamRt {
                    id: self.upstream_id(),
                    cfg: Arc::new(c.clone()),
                    health: Health::new(now),
                    stats: UpstreamStats::default(),
                    socket_cursor: 0,
                },
            };
            next.push(rt);
        }
        let place: Vec<Option<usize>> = old
            .iter()
            .map(|o| next.iter().position(|n| n.id == o.id))
            .collect();
        for p in self.pending.values_mut() {
            if let Some(nas) = p.nas.as_mut() {
                let mut tried = 0u64;
                for (i, to) in place.iter().enumerate() {
                    if let (true, Some(to)) = (nas.tried & (1 << i) != 0, to) {
                        tried |= 1 << to;
                    }
                }
                nas.tried = tried;
            }
        }
        self.rr_cursor = 0;
        self.upstreams = next;
    }

    fn upstream_id(&mut self) -> u32 {
        self.next_upstream_id += 1;
        self.next_upstream_id
    }
}
