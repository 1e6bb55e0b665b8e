//! The sans-IO proxy engine.
//!
//! It is driven by three inputs: a datagram from a NAS
//! ([`Engine::handle_nas`]), a datagram from an upstream
//! ([`Engine::handle_upstream`]) and the passing of time
//! ([`Engine::handle_timeout`]). Every input takes `now`; the engine never
//! reads a clock or touches a socket. What it wants sent comes out of
//! [`Engine::poll_transmit`], and when it next needs to be woken out of
//! [`Engine::poll_timeout`]. So retransmission, failover, duplicate
//! detection and health checks are all testable on a virtual clock.

mod clients;
mod dedup;
mod forward;
mod login;
mod reload;
mod rewrite;
mod stats;
mod upstream;
mod warn;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tracing::{debug, warn};

use crate::config::{self, Config, HealthCheck};
use crate::radius::dict::Dictionary;
use crate::radius::{AUTH_LEN, Authenticator, Code, Packet, PacketBuilder, attr, crypto};
use clients::{ClientRef, ClientTable};
use dedup::{DedupCache, DedupKey, Lookup};
pub use login::{
    CallbackStatus, CallbackTaken, Delivery, DeliveryOutcome, DirectoryCheck, FraudReport,
    GroupSource, StoreJob, sign, signature_ok,
};
use reload::ListenerState;
pub use reload::{ReloadPlan, Reloaded};
use rewrite::CryptTable;
pub use stats::{Counter, RTT_BUCKETS_US, Stats, UpstreamStats};
use upstream::{Health, IdPool};
use warn::{Throttle, Topic};

/// The engine's maps, keyed by requests in flight and logins, are looked up
/// several times per datagram: foldhash (randomly seeded per map) instead of
/// SipHash. Every key is either ours or comes from a client whose signature
/// was already checked.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How often expired answers are swept from the duplicate cache. Lookups
/// expire entries too, so an answer is never served past its window by more
/// than this.
const DEDUP_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The EAP code of a Failure (RFC 3748 §4.2).
const EAP_FAILURE: u8 = 4;

/// Which socket a datagram leaves from: a NAS-facing listener or one of the
/// upstream-facing sockets, by index in the order the engine lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketRef {
    Listener(u16),
    Upstream(u16),
}

/// What a listener receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Auth,
    Acct,
}

/// The address family of an upstream-facing socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(a: &SocketAddr) -> Family {
        if a.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

/// A datagram to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub socket: SocketRef,
    pub to: SocketAddr,
    pub payload: Arc<[u8]>,
}

/// Upstream requests are keyed by the socket they left from, the address
/// they went to and the identifier: RADIUS's own identifier space, which
/// no reload can make ambiguous (an upstream removed, reordered or re-added
/// under another name is still the address its requests went to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PendingKey {
    socket: u16,
    dest: SocketAddr,
    id: u8,
}

/// A NAS request being proxied.
#[derive(Debug)]
struct NasRequest {
    /// The client the request was authenticated as; its answer is signed
    /// with this entry's secret whatever a reload does meanwhile.
    client: ClientRef,
    listener: u16,
    from: SocketAddr,
    dedup: DedupKey,
    /// The request as the NAS sent it, to rebuild it for another upstream.
    request: Vec<u8>,
    /// Upstreams already tried, as a bit set of their places in the list
    /// (a reload maps it onto the new list).
    tried: u64,
    /// The password to send upstream instead of the NAS's, when the NAS's
    /// carried an inline one-time code.
    password: Option<crate::secret::Secret>,
    inline_code: Option<crate::secret::Secret>,
}

#[derive(Debug)]
struct Pending {
    /// `None` for a Status-Server probe.
    nas: Option<NasRequest>,
    /// The upstream it went to ([`UpstreamRt::id`]), and its configuration
    /// then: the reply is checked with that secret, retransmissions follow
    /// those timers, whatever a reload does meanwhile.
    upstream: u32,
    cfg: Arc<config::Upstream>,
    dest: SocketAddr,
    payload: Arc<[u8]>,
    auth: Authenticator,
    proxy_state: [u8; 8],
    sends: u8,
    first_sent: Instant,
    timer: u64,
    /// Sent to a dead upstream as its one trial (see `choose`).
    trial: bool,
}

#[derive(Debug)]
struct UpstreamRt {
    /// Stays the same across reloads while the upstream is the same server
    /// (name, addresses and secret): its health goes with it.
    id: u32,
    cfg: Arc<config::Upstream>,
    health: Health,
    /// Its counters, kept across reloads by name.
    stats: UpstreamStats,
    /// Where the next socket search starts.
    socket_cursor: usize,
}

/// The proxy engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    proxy: config::Proxy,
    /// Every listener ever opened, by [`SocketRef::Listener`] index (a
    /// reload only appends), and whether it is still in use.
    listeners: Vec<(SocketAddr, ListenerKind)>,
    listener_state: Vec<ListenerState>,
    /// Listeners the shell may close now.
    closed_listeners: VecDeque<u16>,
    clients: ClientTable,
    /// In the file's order.
    upstreams: Vec<UpstreamRt>,
    next_upstream_id: u32,
    /// Every upstream-facing socket ever opened (a reload only appends).
    sockets: Vec<Family>,
    /// The sockets in use, per family (`Family as usize`).
    family_sockets: [Vec<u16>; 2],
    /// Per (socket, destination), made when first used.
    ids: HashMap<(u16, SocketAddr), IdPool>,
    rr_cursor: usize,
    pending: HashMap<PendingKey, Pending>,
    timers: BinaryHeap<Reverse<(Instant, u64, PendingKey)>>,
    next_timer: u64,
    dedup: DedupCache,
    out: VecDeque<Transmit>,
    rng: StdRng,
    crypt: CryptTable,
    dictionary: Arc<Dictionary>,
    proxy_state_tag: [u8; 4],
    proxy_state_seq: u32,
    /// Earliest time the duplicate cache is swept again.
    next_sweep: Instant,
    logins: login::Logins,
    primary: config::Primary,
    stats: Stats,
    /// Rate limit of the warnings a flood could repeat.
    throttle: Throttle,
}

impl Engine {
    /// A new engine. `seed` keys its CSPRNG (authenticators, salts,
    /// Proxy-State): give it 32 bytes from the operating system.
    pub fn new(
        config: &Config,
        dictionary: Arc<Dictionary>,
        seed: [u8; 32],
        now: Instant,
    ) -> Engine {
        let listeners = reload::wanted_listeners(config);
        let mut rng = StdRng::from_seed(seed);
        let mut proxy_state_tag = [0u8; 4];
        rng.fill_bytes(&mut proxy_state_tag);
        let logins = login::Logins::new(config, &dictionary);
        let mut e = Engine {
            proxy: config.proxy.clone(),
            listener_state: vec![ListenerState::Open; listeners.len()],
            listeners,
            closed_listeners: VecDeque::new(),
            clients: ClientTable::new(&config.clients),
            upstreams: Vec::new(),
            next_upstream_id: 0,
            sockets: Vec::new(),
            family_sockets: [Vec::new(), Vec::new()],
            ids: HashMap::default(),
            rr_cursor: 0,
            pending: HashMap::default(),
            timers: BinaryHeap::new(),
            next_timer: 0,
            dedup: DedupCache::new(config.proxy.dedup_window, config.proxy.dedup_max_entries),
            out: VecDeque::new(),
            crypt: CryptTable::from_dictionary(&dictionary),
            dictionary,
            rng,
            proxy_state_tag,
            proxy_state_seq: 0,
            next_sweep: now,
            logins,
            primary: config.primary.clone(),
            stats: Stats::new(),
            throttle: Throttle::default(),
        };
        e.set_upstreams(&config.upstreams, now);
        let opened = e.add_upstream_sockets(&config.upstreams);
        debug_assert_eq!(opened.len(), e.sockets.len());
        e
    }

    /// The NAS-facing sockets, in [`SocketRef::Listener`] order: at the
    /// start, the ones to open. (A reload appends; see
    /// [`Engine::reload`].)
    pub fn listeners(&self) -> &[(SocketAddr, ListenerKind)] {
        &self.listeners
    }

    /// The upstream-facing sockets to open (unbound, ephemeral port), in
    /// [`SocketRef::Upstream`] order.
    pub fn upstream_sockets(&self) -> &[Family] {
        &self.sockets
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.upstreams = self
            .upstreams
            .iter()
            .map(|u| UpstreamStats {
                name: u.cfg.name.clone(),
                alive: u.health.alive,
                ..u.stats.clone()
            })
            .collect();
        s
    }

    /// Requests waiting for an upstream answer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Entries in the duplicate cache.
    pub fn dedup_len(&self) -> usize {
        self.dedup.len()
    }

    /// The next datagram to send. One for a listener a reload closed
    /// (which only an answer to a request that was not in flight could be)
    /// is dropped and counted here, so the shell never sees it.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(t) = self.out.pop_front() {
            if let SocketRef::Listener(i) = t.socket {
                if self.listener_state.get(usize::from(i)) == Some(&ListenerState::Closed) {
                    self.stats.inc(Counter::DropListenerClosed);
                    continue;
                }
            }
            return Some(t);
        }
        None
    }

    /// When [`Engine::handle_timeout`] must next be called. Timers of
    /// requests already answered are discarded here, so they never cause a
    /// wake-up; cached answers are swept at most once a second.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((_, timer, key))) = self.timers.peek() {
            match self.pending.get(&key) {
                Some(p) if p.timer == timer => break,
                _ => {
                    self.timers.pop();
                }
            }
        }
        let mut next = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = self.dedup.next_expiry() {
            consider(t.max(self.next_sweep));
        }
        if let Some(t) = self.logins.next_timeout() {
            consider(t);
        }
        if self.listener_state.contains(&ListenerState::Draining) {
            consider(self.next_sweep);
        }
        for u in &self.upstreams {
            match u.cfg.health_check {
                HealthCheck::StatusServer if !u.health.probe_in_flight => {
                    consider(u.health.next_probe)
                }
                HealthCheck::None => {
                    if let Some(t) = u.health.dead_since {
                        consider(t + self.proxy.revive_after);
                    }
                }
                HealthCheck::StatusServer => {}
            }
        }
        next
    }

    // ---- from NAS clients ----------------------------------------------------

    /// A datagram from a NAS arrived on listener `listener`.
    pub fn handle_nas(&mut self, now: Instant, listener: u16, from: SocketAddr, data: &[u8]) {
        self.stats.inc(Counter::RequestsReceived);
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let kind = match (
            self.listeners.get(usize::from(listener)),
            self.listener_state.get(usize::from(listener)),
        ) {
            (Some(&(_, kind)), Some(ListenerState::Open)) => kind,
            _ => {
                return self.drop_nas(
                    Counter::DropListenerClosed,
                    from,
                    "arrived on a listener a reload removed",
                );
            }
        };
        let Some(client) = self.clients.lookup(from.ip()).cloned() else {
            return self.drop_nas(Counter::DropUnknownClient, from, "unknown client");
        };
        let p = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                let c = if matches!(e, crate::radius::DecodeError::Oversized(_)) {
                    Counter::DropOversized
                } else {
                    Counter::DropMalformed
                };
                debug!(%from, error = %e, "dropped malformed request");
                self.stats.inc(c);
                return;
            }
        };
        match (kind, p.code()) {
            (ListenerKind::Auth, Code::ACCESS_REQUEST) => {
                self.access_request(now, listener, from, client, &p)
            }
            (ListenerKind::Acct, Code::ACCOUNTING_REQUEST) => {
                self.accounting_request(now, listener, from, client, &p)
            }
            (_, Code::STATUS_SERVER) => self.status_server(listener, from, client, kind, &p),
            _ => self.drop_nas(Counter::DropUnexpectedCode, from, "unexpected code"),
        }
    }

    fn drop_nas(&mut self, c: Counter, from: SocketAddr, why: &'static str) {
        debug!(%from, reason = c.name(), "dropped request: {why}");
        self.stats.inc(c);
    }

    /// Checks the Message-Authenticator of a request whose authenticator
    /// field is `auth` for the purpose (the packet's own, or zeros for
    /// accounting). Returns the counter to drop with, if any.
    fn check_request_signature(
        &self,
        c: &config::Client,
        p: &Packet<'_>,
        auth: &Authenticator,
    ) -> Option<Counter> {
        match p.message_authenticator_offset() {
            Some(off) => {
                if !crypto::verify_message_authenticator(p.as_bytes(), off, auth, &c.secret) {
                    return Some(Counter::DropBadMessageAuthenticator);
                }
            }
            None => {
                if p.requires_message_authenticator()
                    || (c.require_message_authenticator && p.code() != Code::ACCOUNTING_REQUEST)
                {
                    return Some(Counter::DropMissingMessageAuthenticator);
                }
                if p.has(attr::PROXY_STATE) && p.code() != Code::ACCOUNTING_REQUEST {
                    // BlastRADIUS (CVE-2024-3596): an unsigned request with
                    // Proxy-State is how the attack smuggles its collision.
                    return Some(Counter::DropBlastRadiusProxyState);
                }
            }
        }
        None
    }

    fn access_request(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        client: ClientRef,
        p: &Packet<'_>,
    ) {
        if let Some(c) = self.check_request_signature(&client, p, p.authenticator()) {
            self.warn_signature(now, &client, c);
            return self.drop_nas(c, from, "request signature check failed");
        }
        if let Some(pw) = p.find(attr::USER_PASSWORD) {
            let n = pw.value.len();
            if n == 0 || n > 128 || n % 16 != 0 {
                return self.drop_nas(
                    Counter::DropBadUserPassword,
                    from,
                    "User-Password length is not 16..=128 in steps of 16",
                );
            }
        }
        self.stats.inc(Counter::AccessRequests);
        if self.logins.enabled() {
            if let Some(state) = p.find(attr::STATE).filter(|s| self.logins.is_ours(s.value)) {
                return self.challenge_answer(now, listener, from, client, p, state.value);
            }
        }
        self.new_request(now, listener, from, client, p);
    }

    /// A client's requests fail their signature check: say which client and
    /// what to change, at most once per interval (a NAS that cannot sign,
    /// such as pam_radius_auth 2.0, is otherwise silently dropped).
    fn warn_signature(&mut self, now: Instant, client: &ClientRef, c: Counter) {
        let topic = match c {
            Counter::DropMissingMessageAuthenticator => Topic::ClientUnsigned(client.id),
            Counter::DropBadMessageAuthenticator => Topic::ClientBadSignature(client.id),
            _ => return,
        };
        let Some(held) = self.throttle.allow(now, topic) else {
            return;
        };
        let name = &client.name;
        match topic {
            Topic::ClientUnsigned(_) => warn!(
                client = %name,
                more = held,
                "dropped an Access-Request without Message-Authenticator: configure the NAS to send it, \
                 or set require_message_authenticator = false in this [[client]] (BlastRADIUS, CVE-2024-3596)"
            ),
            _ => warn!(
                client = %name,
                more = held,
                "dropped an Access-Request whose Message-Authenticator does not verify: \
                 the [[client]] secret differs from the NAS's"
            ),
        }
    }

    fn accounting_request(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        client: ClientRef,
        p: &Packet<'_>,
    ) {
        let secret = client.secret.expose();
        if !crypto::verify_packet_authenticator(p.as_bytes(), &[0; AUTH_LEN], secret) {
            return self.drop_nas(
                Counter::DropBadRequestAuthenticator,
                from,
                "accounting Request Authenticator mismatch",
            );
        }
        if let Some(c) = self.check_request_signature(&client, p, &[0; AUTH_LEN]) {
            return self.drop_nas(c, from, "request signature check failed");
        }
        self.stats.inc(Counter::AccountingRequests);
        self.new_request(now, listener, from, client, p);
    }

    /// Duplicate detection for a NAS request: `Some(key)` when it is new
    /// (and now recorded in flight); otherwise the duplicate has been dropped
    /// or answered from the cache.
    fn admit(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        p: &Packet<'_>,
    ) -> Option<DedupKey> {
        let key = DedupKey {
            listener,
            from,
            identifier: p.identifier(),
            authenticator: *p.authenticator(),
        };
        match self.dedup.lookup(key, now) {
            Lookup::New => Some(key),
            Lookup::InFlight => {
                self.drop_nas(
                    Counter::DropDuplicateInFlight,
                    from,
                    "retransmission of a request in flight",
                );
                None
            }
            Lookup::Full => {
                self.drop_nas(Counter::DropDedupFull, from, "duplicate cache full");
                None
            }
            Lookup::Answered(reply) => {
                self.stats.inc(Counter::DuplicateResent);
                debug!(%from, id = p.identifier(), "re-sent cached answer to a retransmission");
                self.out.push_back(Transmit {
                    socket: SocketRef::Listener(listener),
                    to: from,
                    payload: reply,
                });
                None
            }
        }
    }

    fn new_request(
        &mut self,
        now: Instant,
        listener: u16,
        from: SocketAddr,
        client: ClientRef,
        p: &Packet<'_>,
    ) {
        let Some(key) = self.admit(now, listener, from, p) else {
            return;
        };
        let mut nas = NasRequest {
            client,
            listener,
            from,
            dedup: key,
            request: p.as_bytes().to_vec(),
            tried: 0,
            password: None,
            inline_code: None,
        };
        let settings = self.logins.settings.clone();
        if let (true, Some(sep), Some(pw)) = (
            self.logins.enabled() && p.code() == Code::ACCESS_REQUEST && !p.has(attr::STATE),
            settings.cfg.inline_separator.as_deref(),
            p.find(attr::USER_PASSWORD),
        ) {
            let secret = nas.client.secret.expose();
            if let Some((password, code)) =
                crypto::unhide_password(pw.value, secret, p.authenticator())
                    .ok()
                    .and_then(|plain| login::split_inline(&plain, sep))
            {
                nas.password = Some(password);
                nas.inline_code = Some(code);
            }
        }
        if self.primary.checked_here() && p.code() == Code::ACCESS_REQUEST {
            return self.first_factor_here(now, nas);
        }
        self.forward(now, nas);
    }

    /// RFC 5997: answered here, never forwarded, never cached.
    fn status_server(
        &mut self,
        listener: u16,
        from: SocketAddr,
        client: ClientRef,
        kind: ListenerKind,
        p: &Packet<'_>,
    ) {
        if let Some(c) = self.check_request_signature(&client, p, p.authenticator()) {
            return self.drop_nas(c, from, "Status-Server signature check failed");
        }
        let code = match kind {
            ListenerKind::Auth => Code::ACCESS_ACCEPT,
            ListenerKind::Acct => Code::ACCOUNTING_RESPONSE,
        };
        let reply = self.local_reply(&client, p, code);
        self.stats.inc(Counter::StatusServerAnswered);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(listener),
            to: from,
            payload: reply.into(),
        });
    }

    /// A reply the proxy makes itself: Message-Authenticator first, then the
    /// request's Proxy-States in order (RFC 2865 §5.33).
    fn local_reply(&self, client: &config::Client, p: &Packet<'_>, code: Code) -> Vec<u8> {
        let mut b = PacketBuilder::new(code, p.identifier(), &[0; AUTH_LEN]);
        let _ = b.push_message_authenticator();
        for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            // The request fit in 4096 octets, so its Proxy-States fit too.
            let _ = b.push_raw(a.raw(p));
        }
        b.finish_response(&client.secret, p.authenticator())
    }

    /// An Access-Reject the proxy makes itself: Message-Authenticator, an
    /// optional Reply-Message, and when the request carries EAP an
    /// EAP-Failure (RFC 3579 §2.6.3), without which a NAS that only relays
    /// EAP leaves the supplicant waiting for its own timeout. Its
    /// identifier is the one of the EAP-Response it answers (RFC 3748 §4.2).
    fn reject_reply(
        &self,
        client: &config::Client,
        p: &Packet<'_>,
        message: Option<&str>,
    ) -> Vec<u8> {
        let mut b = PacketBuilder::new(Code::ACCESS_REJECT, p.identifier(), &[0; AUTH_LEN]);
        let _ = b.push_message_authenticator();
        let eap = p.find(attr::EAP_MESSAGE);
        // Inside EAP the supplicant reads the EAP-Failure, not a text for a
        // person: no Reply-Message beside it.
        if let Some(m) = message.filter(|_| eap.is_none()) {
            // At most one attribute's worth, cut on a character boundary.
            let end = (0..=m.len().min(253))
                .rev()
                .find(|&i| m.is_char_boundary(i))
                .unwrap_or(0);
            let _ = b.push(attr::REPLY_MESSAGE, &m.as_bytes()[..end]);
        }
        if let Some(&id) = eap.and_then(|a| a.value.get(1)) {
            let _ = b.push(attr::EAP_MESSAGE, &[EAP_FAILURE, id, 0, 4]);
        }
        // The request fit in 4096 octets, so its Proxy-States fit too.
        for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            let _ = b.push_raw(a.raw(p));
        }
        b.finish_response(&client.secret, p.authenticator())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_mfa;

#[cfg(test)]
mod tests_cluster;

#[cfg(test)]
mod tests_hardening;

#[cfg(test)]
mod tests_ldap;

#[cfg(test)]
mod tests_oob;
#[cfg(test)]
mod tests_oob_modes;

#[cfg(test)]
mod tests_policy;

#[cfg(test)]
mod tests_reload;
