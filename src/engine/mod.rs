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
mod login;
mod oob;
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
use tracing::{debug, info, warn};

use crate::config::{self, Config, HealthCheck, Selection, WhenAllDown};
use crate::radius::dict::Dictionary;
use crate::radius::{AUTH_LEN, Authenticator, Code, Packet, PacketBuilder, attr, crypto};
use clients::ClientTable;
use dedup::{DedupCache, DedupKey, Lookup};
pub use login::StoreJob;
pub use oob::{CallbackStatus, Delivery, DeliveryOutcome, FraudReport, sign, signature_ok};
use rewrite::{CryptTable, RewriteError, Rewriter, Side};
pub use stats::{Counter, RTT_BUCKETS_US, Stats, UpstreamStats};
use upstream::{Health, IdPool, Transition};
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

/// Upstream requests are keyed by the socket they left from, the upstream
/// and the identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PendingKey {
    socket: u16,
    upstream: u16,
    id: u8,
}

/// A NAS request being proxied.
#[derive(Debug)]
struct NasRequest {
    client: usize,
    listener: u16,
    from: SocketAddr,
    dedup: DedupKey,
    /// The request as the NAS sent it, to rebuild it for another upstream.
    request: Vec<u8>,
    /// Upstreams already tried, as a bit set.
    tried: u64,
    /// The password to send upstream instead of the NAS's, when the NAS's
    /// carried an inline one-time code.
    password: Option<config::Secret>,
    inline_code: Option<config::Secret>,
}

#[derive(Debug)]
struct Pending {
    /// `None` for a Status-Server probe.
    nas: Option<NasRequest>,
    dest: SocketAddr,
    payload: Arc<[u8]>,
    auth: Authenticator,
    proxy_state: [u8; 8],
    sends: u8,
    first_sent: Instant,
    timer: u64,
}

#[derive(Debug)]
struct UpstreamRt {
    cfg: config::Upstream,
    health: Health,
}

/// The proxy engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    proxy: config::Proxy,
    listeners: Vec<(SocketAddr, ListenerKind)>,
    clients: ClientTable,
    upstreams: Vec<UpstreamRt>,
    sockets: Vec<Family>,
    /// Indexed by `socket * upstreams.len() + upstream`.
    ids: Vec<IdPool>,
    /// Per upstream, where the next socket search starts.
    socket_cursor: Vec<usize>,
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
        let listeners: Vec<_> = config
            .server
            .auth_listen
            .iter()
            .map(|a| (*a, ListenerKind::Auth))
            .chain(
                config
                    .server
                    .acct_listen
                    .iter()
                    .map(|a| (*a, ListenerKind::Acct)),
            )
            .collect();
        let mut families = Vec::new();
        for u in &config.upstreams {
            for a in std::iter::once(&u.address).chain(u.acct_address.as_ref()) {
                let f = Family::of(a);
                if !families.contains(&f) {
                    families.push(f);
                }
            }
        }
        let n = config.proxy.upstream_sockets as usize;
        let sockets: Vec<Family> = families
            .iter()
            .flat_map(|f| std::iter::repeat_n(*f, n))
            .collect();
        let mut rng = StdRng::from_seed(seed);
        let ids = (0..sockets.len() * config.upstreams.len())
            .map(|_| IdPool::new((rng.next_u32() & 0xff) as u8))
            .collect();
        let mut proxy_state_tag = [0u8; 4];
        rng.fill_bytes(&mut proxy_state_tag);
        let mut state_tag = [0u8; 4];
        rng.fill_bytes(&mut state_tag);
        Engine {
            proxy: config.proxy.clone(),
            listeners,
            clients: ClientTable::new(&config.clients),
            upstreams: config
                .upstreams
                .iter()
                .map(|u| UpstreamRt {
                    cfg: u.clone(),
                    health: Health::new(now),
                })
                .collect(),
            sockets,
            ids,
            socket_cursor: vec![0; config.upstreams.len()],
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
            logins: login::Logins::new(config, state_tag),
            primary: config.primary,
            stats: Stats::new(config.upstreams.len()),
            throttle: Throttle::default(),
        }
    }

    /// The NAS-facing sockets to open, in [`SocketRef::Listener`] order.
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
        for (st, u) in s.upstreams.iter_mut().zip(&self.upstreams) {
            st.alive = u.health.alive;
        }
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

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
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
        let Some(&(_, kind)) = self.listeners.get(usize::from(listener)) else {
            return;
        };
        let Some((client, _)) = self.clients.lookup(from.ip()) else {
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
        client: usize,
        p: &Packet<'_>,
        auth: &Authenticator,
    ) -> Option<Counter> {
        let c = self.clients.get(client);
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
        client: usize,
        p: &Packet<'_>,
    ) {
        if let Some(c) = self.check_request_signature(client, p, p.authenticator()) {
            self.warn_signature(now, client, c);
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
        if self.logins.cfg.enabled {
            if let Some(state) = p.find(attr::STATE).filter(|s| self.logins.is_ours(s.value)) {
                return self.challenge_answer(now, listener, from, client, p, state.value);
            }
        }
        self.new_request(now, listener, from, client, p);
    }

    /// A client's requests fail their signature check: say which client and
    /// what to change, at most once per interval (a NAS that cannot sign,
    /// such as pam_radius_auth 2.0, is otherwise silently dropped).
    fn warn_signature(&mut self, now: Instant, client: usize, c: Counter) {
        let topic = match c {
            Counter::DropMissingMessageAuthenticator => Topic::ClientUnsigned(client),
            Counter::DropBadMessageAuthenticator => Topic::ClientBadSignature(client),
            _ => return,
        };
        let Some(held) = self.throttle.allow(now, topic) else {
            return;
        };
        let name = &self.clients.get(client).name;
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
        client: usize,
        p: &Packet<'_>,
    ) {
        let secret = self.clients.get(client).secret.expose();
        if !crypto::verify_packet_authenticator(p.as_bytes(), &[0; AUTH_LEN], secret) {
            return self.drop_nas(
                Counter::DropBadRequestAuthenticator,
                from,
                "accounting Request Authenticator mismatch",
            );
        }
        if let Some(c) = self.check_request_signature(client, p, &[0; AUTH_LEN]) {
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
        client: usize,
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
        if let (true, Some(sep), Some(pw)) = (
            self.logins.cfg.enabled && p.code() == Code::ACCESS_REQUEST && !p.has(attr::STATE),
            self.logins.cfg.inline_separator.as_deref(),
            p.find(attr::USER_PASSWORD),
        ) {
            let secret = self.clients.get(client).secret.expose();
            if let Some((password, code)) =
                crypto::unhide_password(pw.value, secret, p.authenticator())
                    .ok()
                    .and_then(|plain| login::split_inline(&plain, sep))
            {
                nas.password = Some(password);
                nas.inline_code = Some(code);
            }
        }
        if self.primary == config::Primary::Local && p.code() == Code::ACCESS_REQUEST {
            return self.local_first_factor(now, nas);
        }
        self.forward(now, nas);
    }

    /// RFC 5997: answered here, never forwarded, never cached.
    fn status_server(
        &mut self,
        listener: u16,
        from: SocketAddr,
        client: usize,
        kind: ListenerKind,
        p: &Packet<'_>,
    ) {
        if let Some(c) = self.check_request_signature(client, p, p.authenticator()) {
            return self.drop_nas(c, from, "Status-Server signature check failed");
        }
        let code = match kind {
            ListenerKind::Auth => Code::ACCESS_ACCEPT,
            ListenerKind::Acct => Code::ACCOUNTING_RESPONSE,
        };
        let reply = self.local_reply(client, p, code);
        self.stats.inc(Counter::StatusServerAnswered);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(listener),
            to: from,
            payload: reply.into(),
        });
    }

    /// A reply the proxy makes itself: Message-Authenticator first, then the
    /// request's Proxy-States in order (RFC 2865 §5.33).
    fn local_reply(&self, client: usize, p: &Packet<'_>, code: Code) -> Vec<u8> {
        let mut b = PacketBuilder::new(code, p.identifier(), &[0; AUTH_LEN]);
        let _ = b.push_message_authenticator();
        for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            // The request fit in 4096 octets, so its Proxy-States fit too.
            let _ = b.push_raw(a.raw(p));
        }
        b.finish_response(&self.clients.get(client).secret, p.authenticator())
    }

    /// An Access-Reject the proxy makes itself: Message-Authenticator, an
    /// optional Reply-Message, and when the request carries EAP an
    /// EAP-Failure (RFC 3579 §2.6.3), without which a NAS that only relays
    /// EAP leaves the supplicant waiting for its own timeout. Its
    /// identifier is the one of the EAP-Response it answers (RFC 3748 §4.2).
    fn reject_reply(&self, client: usize, p: &Packet<'_>, message: Option<&str>) -> Vec<u8> {
        let mut b = PacketBuilder::new(Code::ACCESS_REJECT, p.identifier(), &[0; AUTH_LEN]);
        let _ = b.push_message_authenticator();
        if let Some(m) = message {
            // At most one attribute's worth, cut on a character boundary.
            let end = (0..=m.len().min(253))
                .rev()
                .find(|&i| m.is_char_boundary(i))
                .unwrap_or(0);
            let _ = b.push(attr::REPLY_MESSAGE, &m.as_bytes()[..end]);
        }
        if let Some(&id) = p.find(attr::EAP_MESSAGE).and_then(|a| a.value.get(1)) {
            let _ = b.push(attr::EAP_MESSAGE, &[EAP_FAILURE, id, 0, 4]);
        }
        // The request fit in 4096 octets, so its Proxy-States fit too.
        for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            let _ = b.push_raw(a.raw(p));
        }
        b.finish_response(&self.clients.get(client).secret, p.authenticator())
    }

    // ---- to upstreams --------------------------------------------------------

    /// Picks the upstream for a request among the live ones not yet tried,
    /// in file order or in turn. A dead upstream gets no requests: it comes
    /// back through its probes (or `revive_after`), so a request for a set
    /// that is all dead is answered at once, not after every retry cycle.
    fn choose(&mut self, accounting: bool, tried: u64) -> Option<usize> {
        let n = self.upstreams.len();
        if n == 0 {
            return None;
        }
        let start = match self.proxy.selection {
            Selection::Failover => 0,
            Selection::RoundRobin => {
                self.rr_cursor = (self.rr_cursor + 1) % n;
                self.rr_cursor
            }
        };
        let usable = |i: usize, u: &UpstreamRt| {
            tried & (1 << i) == 0 && (!accounting || u.cfg.acct_address.is_some())
        };
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| usable(i, &self.upstreams[i]) && self.upstreams[i].health.alive)
    }

    /// A free (socket, identifier) towards upstream `u` at `dest`.
    fn alloc_id(&mut self, u: usize, dest: &SocketAddr) -> Option<(u16, u8)> {
        let family = Family::of(dest);
        let n = self.sockets.len();
        let nu = self.upstreams.len();
        for k in 0..n {
            let s = (self.socket_cursor[u] + k) % n;
            if self.sockets[s] != family {
                continue;
            }
            if let Some(id) = self.ids[s * nu + u].alloc() {
                self.socket_cursor[u] = (s + 1) % n;
                return Some((s as u16, id));
            }
        }
        None
    }

    fn free_id(&mut self, key: PendingKey) {
        let nu = self.upstreams.len();
        self.ids[usize::from(key.socket) * nu + usize::from(key.upstream)].free(key.id);
    }

    fn arm(&mut self, now: Instant, key: PendingKey, timeout: std::time::Duration) -> u64 {
        self.next_timer += 1;
        self.timers
            .push(Reverse((now + timeout, self.next_timer, key)));
        self.next_timer
    }

    /// Sends a NAS request to the next upstream, or gives up.
    fn forward(&mut self, now: Instant, mut nas: NasRequest) {
        let accounting = nas.request[0] == Code::ACCOUNTING_REQUEST.0;
        let Some(u) = self.choose(accounting, nas.tried) else {
            return self.give_up(now, nas);
        };
        nas.tried |= 1 << u;
        let up = &self.upstreams[u].cfg;
        let dest = if accounting {
            up.acct_address.unwrap_or(up.address)
        } else {
            up.address
        };
        let Some((socket, id)) = self.alloc_id(u, &dest) else {
            self.dedup.forget(&nas.dedup);
            return self.drop_nas(
                Counter::DropIdsExhausted,
                nas.from,
                "no free identifier towards the upstream",
            );
        };
        let key = PendingKey {
            socket,
            upstream: u as u16,
            id,
        };
        let mut auth = [0u8; AUTH_LEN];
        if !accounting {
            self.rng.fill_bytes(&mut auth);
        }
        self.proxy_state_seq = self.proxy_state_seq.wrapping_add(1);
        let mut proxy_state = [0u8; 8];
        proxy_state[..4].copy_from_slice(&self.proxy_state_tag);
        proxy_state[4..].copy_from_slice(&self.proxy_state_seq.to_be_bytes());

        let built = {
            let p = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
            let client = self.clients.get(nas.client);
            let up = &self.upstreams[u].cfg;
            let mut b = PacketBuilder::with_capacity(p.code(), id, &auth, p.len() + 32);
            let mut rw = Rewriter {
                crypt: &self.crypt,
                from: Side {
                    secret: client.secret.expose(),
                    auth: p.authenticator(),
                },
                to: Side {
                    secret: up.secret.expose(),
                    auth: &auth,
                },
                rng: &mut self.rng,
            };
            let password = nas.password.as_ref();
            let build = || -> Result<Vec<u8>, RewriteError> {
                b.push_message_authenticator()?;
                rw.copy(&p, &mut b, |a: &crate::radius::Attr<'_>| {
                    password.is_none() || a.typ != attr::USER_PASSWORD
                })?;
                if let Some(pw) = password {
                    let hidden = crypto::hide_password(pw.expose(), up.secret.expose(), &auth)
                        .map_err(|_| RewriteError::BadEncrypted {
                            vendor: 0,
                            typ: attr::USER_PASSWORD,
                        })?;
                    b.push(attr::USER_PASSWORD, &hidden)?;
                }
                // CHAP without CHAP-Challenge uses the Request Authenticator
                // as the challenge (RFC 2865 §2.2), which we replace.
                if p.has(attr::CHAP_PASSWORD) && !p.has(attr::CHAP_CHALLENGE) {
                    b.push(attr::CHAP_CHALLENGE, p.authenticator())?;
                }
                b.push(attr::PROXY_STATE, &proxy_state)?;
                Ok(if accounting {
                    b.finish_accounting_request(&up.secret)
                } else {
                    b.finish_request(&up.secret)
                })
            };
            build()
        };
        let payload: Arc<[u8]> = match built {
            Ok(v) => v.into(),
            Err(e) => {
                self.free_id(key);
                self.dedup.forget(&nas.dedup);
                let c = match e {
                    RewriteError::TooLarge => Counter::DropTooLargeToForward,
                    RewriteError::BadEncrypted { .. } => Counter::DropBadUserPassword,
                };
                return self.drop_nas(c, nas.from, "request cannot be forwarded");
            }
        };
        if accounting {
            auth.copy_from_slice(&payload[4..20]);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.log_forward(&nas, u);
        }
        let timeout = self.upstreams[u].cfg.timeout;
        let timer = self.arm(now, key, timeout);
        self.stats.inc(Counter::UpstreamRequests);
        self.stats.upstreams[u].requests += 1;
        self.out.push_back(Transmit {
            socket: SocketRef::Upstream(socket),
            to: dest,
            payload: payload.clone(),
        });
        self.pending.insert(
            key,
            Pending {
                nas: Some(nas),
                dest,
                payload,
                auth,
                proxy_state,
                sends: 1,
                first_sent: now,
                timer,
            },
        );
    }

    fn log_forward(&self, nas: &NasRequest, u: usize) {
        let Ok(p) = Packet::parse(&nas.request) else {
            return;
        };
        let names: Vec<String> = p
            .attributes()
            .map(|a| match a.vsa() {
                Some((v, mut s)) => self
                    .dictionary
                    .name_of(v, s.next().map_or(0, |s| u32::from(s.typ))),
                None => self.dictionary.name_of(0, u32::from(a.typ)),
            })
            .collect();
        debug!(
            client = %self.clients.get(nas.client).name,
            from = %nas.from,
            upstream = %self.upstreams[u].cfg.name,
            code = %p.code(),
            attributes = %names.join(","),
            "forwarding request"
        );
    }

    /// No upstream is left for this request.
    fn give_up(&mut self, now: Instant, nas: NasRequest) {
        let accounting = nas.request[0] == Code::ACCOUNTING_REQUEST.0;
        if !accounting && self.proxy.when_all_down == WhenAllDown::Reject {
            let p = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
            let reply: Arc<[u8]> = self.reject_reply(nas.client, &p, None).into();
            self.stats.inc(Counter::RejectAllUpstreamsDown);
            self.stats.inc(Counter::RepliesReject);
            self.dedup.answer(nas.dedup, reply.clone(), now);
            self.warn_no_upstream(now, &nas, "sent Access-Reject");
            self.out.push_back(Transmit {
                socket: SocketRef::Listener(nas.listener),
                to: nas.from,
                payload: reply,
            });
        } else {
            self.dedup.forget(&nas.dedup);
            self.warn_no_upstream(now, &nas, "request dropped");
            self.stats.inc(Counter::DropNoUpstream);
        }
    }

    fn warn_no_upstream(&mut self, now: Instant, nas: &NasRequest, what: &str) {
        if let Some(held) = self.throttle.allow(now, Topic::NoUpstream) {
            let dead = self.upstreams.iter().filter(|u| !u.health.alive).count();
            warn!(
                client = %self.clients.get(nas.client).name,
                from = %nas.from,
                dead,
                more = held,
                "no live upstream answered: {what}"
            );
        }
    }

    // ---- from upstreams ------------------------------------------------------

    /// A datagram arrived on upstream-facing socket `socket`.
    pub fn handle_upstream(&mut self, now: Instant, socket: u16, from: SocketAddr, data: &[u8]) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let Some(u) = self
            .upstreams
            .iter()
            .position(|up| up.cfg.address == from || up.cfg.acct_address == Some(from))
        else {
            debug!(%from, "dropped datagram from an address that is no upstream");
            return self.stats.inc(Counter::UpstreamDropUnknownSource);
        };
        let p = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                debug!(%from, error = %e, "dropped malformed upstream reply");
                return self.stats.inc(Counter::UpstreamDropMalformed);
            }
        };
        let key = PendingKey {
            socket,
            upstream: u as u16,
            id: p.identifier(),
        };
        let Some(pending) = self.pending.get(&key) else {
            debug!(%from, id = p.identifier(), "dropped reply matching no request (late or duplicate)");
            return self.stats.inc(Counter::UpstreamDropUnmatched);
        };
        let up = &self.upstreams[u].cfg;
        let expected = match &pending.nas {
            None if pending.dest == up.address => {
                matches!(p.code(), Code::ACCESS_ACCEPT | Code::ACCESS_REJECT)
            }
            None => p.code() == Code::ACCOUNTING_RESPONSE,
            Some(n) if n.request[0] == Code::ACCOUNTING_REQUEST.0 => {
                p.code() == Code::ACCOUNTING_RESPONSE
            }
            Some(_) => matches!(
                p.code(),
                Code::ACCESS_ACCEPT | Code::ACCESS_REJECT | Code::ACCESS_CHALLENGE
            ),
        };
        if !expected || from != pending.dest {
            return self.stats.inc(Counter::UpstreamDropUnexpectedCode);
        }
        if !crypto::verify_packet_authenticator(p.as_bytes(), &pending.auth, up.secret.expose()) {
            if let Some(held) = self.throttle.allow(now, Topic::UpstreamForged(u)) {
                warn!(upstream = %up.name, more = held, "reply with a bad Response Authenticator: wrong shared secret or forged");
            }
            return self.stats.inc(Counter::UpstreamDropBadAuthenticator);
        }
        // An Accounting-Response to an Accounting-Request is signed over a
        // zero authenticator; every other response over the request's.
        let ma_auth = if p.code() == Code::ACCOUNTING_RESPONSE && pending.nas.is_some() {
            [0; AUTH_LEN]
        } else {
            pending.auth
        };
        match p.message_authenticator_offset() {
            Some(off)
                if !crypto::verify_message_authenticator(
                    p.as_bytes(),
                    off,
                    &ma_auth,
                    &up.secret,
                ) =>
            {
                return self.stats.inc(Counter::UpstreamDropBadMessageAuthenticator);
            }
            Some(_) => {}
            None if up.require_message_authenticator && p.code() != Code::ACCOUNTING_RESPONSE => {
                return self.drop_unsigned_reply(now, u, false);
            }
            None if p.has(attr::EAP_MESSAGE) => {
                return self.drop_unsigned_reply(now, u, true);
            }
            None => {}
        }
        // Our Proxy-State is the last one (RFC 2865 §5.33).
        let ours = match &pending.nas {
            None => None,
            Some(_) => match p.attributes().filter(|a| a.typ == attr::PROXY_STATE).last() {
                Some(a) if a.value == pending.proxy_state => Some(a.offset),
                _ => {
                    warn!(upstream = %up.name, "reply without our Proxy-State: dropped");
                    return self.stats.inc(Counter::UpstreamDropProxyStateMismatch);
                }
            },
        };

        // The reply is genuine: the request is done.
        let pending = self.pending.remove(&key).expect("looked up above");
        self.free_id(key);
        self.stats.inc(Counter::UpstreamReplies);
        let ust = &mut self.stats.upstreams[u];
        ust.replies += 1;
        if pending.sends == 1 {
            let us = now
                .saturating_duration_since(pending.first_sent)
                .as_micros() as u64;
            ust.record_rtt(us);
        }
        self.health_success(u);
        let Some(nas) = pending.nas else {
            self.upstreams[u].health.probe_in_flight = false;
            return;
        };
        self.relay_reply(now, u, &p, &pending.auth, ours, nas);
    }

    /// An upstream answered without Message-Authenticator. Left silent, the
    /// request times out and the upstream is marked dead, which hides the
    /// cause: say which upstream and what to change.
    fn drop_unsigned_reply(&mut self, now: Instant, u: usize, eap: bool) {
        self.stats
            .inc(Counter::UpstreamDropMissingMessageAuthenticator);
        let Some(held) = self.throttle.allow(now, Topic::UpstreamUnsigned(u)) else {
            return;
        };
        let name = &self.upstreams[u].cfg.name;
        if eap {
            warn!(upstream = %name, more = held, "dropped an EAP reply without Message-Authenticator (RFC 3579 requires one): the upstream is misconfigured or the reply forged");
        } else {
            warn!(
                upstream = %name,
                more = held,
                "dropped a reply without Message-Authenticator: make the server sign its replies, \
                 or set require_message_authenticator = false in this [[upstream]] \
                 (FreeRADIUS 3.2 does not sign PAP and MS-CHAP answers)"
            );
        }
    }

    fn relay_reply(
        &mut self,
        now: Instant,
        u: usize,
        p: &Packet<'_>,
        upstream_auth: &Authenticator,
        ours: Option<usize>,
        nas: NasRequest,
    ) {
        let req = Packet::parse(&nas.request).expect("stored requests were validated on arrival");
        if self.logins.cfg.enabled
            && p.code() == Code::ACCESS_ACCEPT
            && req.code() == Code::ACCESS_REQUEST
        {
            return self.start_login(now, u, p, upstream_auth, nas);
        }
        let client = self.clients.get(nas.client);
        let mut b =
            PacketBuilder::with_capacity(p.code(), req.identifier(), &[0; AUTH_LEN], p.len() + 18);
        let mut rw = Rewriter {
            crypt: &self.crypt,
            from: Side {
                secret: self.upstreams[u].cfg.secret.expose(),
                auth: upstream_auth,
            },
            to: Side {
                secret: client.secret.expose(),
                auth: req.authenticator(),
            },
            rng: &mut self.rng,
        };
        let built = (|| -> Result<Vec<u8>, RewriteError> {
            b.push_message_authenticator()?;
            rw.copy(p, &mut b, |a: &crate::radius::Attr<'_>| {
                Some(a.offset) != ours
            })?;
            Ok(if p.code() == Code::ACCOUNTING_RESPONSE {
                b.finish_accounting_response(&client.secret, req.authenticator())
            } else {
                b.finish_response(&client.secret, req.authenticator())
            })
        })();
        let reply: Arc<[u8]> = match built {
            Ok(v) => v.into(),
            Err(e) => {
                // Fail closed: the NAS hears nothing and may retry.
                self.dedup.forget(&nas.dedup);
                let c = match e {
                    RewriteError::TooLarge => Counter::UpstreamDropReplyTooLarge,
                    RewriteError::BadEncrypted { .. } => Counter::UpstreamDropBadEncryptedAttribute,
                };
                warn!(upstream = %self.upstreams[u].cfg.name, reason = c.name(), "upstream reply cannot be relayed");
                return self.stats.inc(c);
            }
        };
        self.stats.inc(match p.code() {
            Code::ACCESS_ACCEPT => Counter::RepliesAccept,
            Code::ACCESS_REJECT => Counter::RepliesReject,
            Code::ACCESS_CHALLENGE => Counter::RepliesChallenge,
            _ => Counter::RepliesAccounting,
        });
        debug!(
            client = %client.name,
            from = %nas.from,
            upstream = %self.upstreams[u].cfg.name,
            code = %p.code(),
            "relayed reply"
        );
        if self.logins.cfg.enabled
            && p.code() == Code::ACCESS_REJECT
            && req.code() == Code::ACCESS_REQUEST
        {
            // The first factor failed: no second factor runs, but the login
            // is recorded like every other.
            let user = login::user_name(&req).unwrap_or_default();
            let mode = if req.has(attr::EAP_MESSAGE) {
                "eap"
            } else {
                "password"
            };
            let why = format!("rejected by upstream {}", self.upstreams[u].cfg.name);
            let (ip, result) = (
                login::client_ip(&req),
                crate::mfa::ResultCode::FailedPrimaryAuth,
            );
            let audit = self.record(&user, nas.client, ip, result, false, mode, Some(&why));
            // The upstream's reject goes out as it came, once recorded.
            let to = login::Answering {
                listener: nas.listener,
                from: nas.from,
                dedup: nas.dedup,
                client: nas.client,
                request: nas.request,
            };
            return self.hold_answer(audit, to, reply.to_vec(), login::Final::Relayed);
        }
        self.dedup.answer(nas.dedup, reply.clone(), now);
        self.out.push_back(Transmit {
            socket: SocketRef::Listener(nas.listener),
            to: nas.from,
            payload: reply,
        });
    }

    fn health_success(&mut self, u: usize) {
        let alive_after = self.proxy.alive_after;
        if self.upstreams[u].health.success(alive_after) == Transition::Revived {
            info!(upstream = %self.upstreams[u].cfg.name, "upstream is alive again");
        }
    }

    fn health_failure(&mut self, now: Instant, u: usize) {
        let dead_after = self.proxy.dead_after;
        if self.upstreams[u].health.failure(now, dead_after) == Transition::Died {
            warn!(upstream = %self.upstreams[u].cfg.name, "upstream marked dead after {dead_after} consecutive timeouts");
        }
    }

    // ---- time ----------------------------------------------------------------

    /// Runs whatever is due at `now`: retransmissions, failovers, probes and
    /// cache expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, timer, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.pending.get(&key) {
                Some(p) if p.timer == timer => self.expire_pending(now, key),
                _ => {}
            }
        }
        self.login_timeouts(now);
        if now >= self.next_sweep {
            self.dedup.expire(now);
            self.next_sweep = now + DEDUP_SWEEP;
        }
        for u in 0..self.upstreams.len() {
            match self.upstreams[u].cfg.health_check {
                HealthCheck::StatusServer => {
                    let h = &self.upstreams[u].health;
                    if !h.probe_in_flight && now >= h.next_probe {
                        self.probe(now, u);
                    }
                }
                HealthCheck::None => {
                    if self.upstreams[u]
                        .health
                        .revive_if_due(now, self.proxy.revive_after)
                        == Transition::Revived
                    {
                        info!(upstream = %self.upstreams[u].cfg.name, "retrying dead upstream after revive_after");
                    }
                }
            }
        }
    }

    fn expire_pending(&mut self, now: Instant, key: PendingKey) {
        let u = usize::from(key.upstream);
        let (timeout, retries) = (self.upstreams[u].cfg.timeout, self.upstreams[u].cfg.retries);
        let pending = self.pending.get_mut(&key).expect("caller checked");
        let is_probe = pending.nas.is_none();
        if !is_probe && pending.sends <= retries {
            // Same identifier, same bytes: a retransmission, not a new request.
            pending.sends += 1;
            let (dest, payload) = (pending.dest, pending.payload.clone());
            let timer = self.arm(now, key, timeout);
            self.pending.get_mut(&key).expect("present").timer = timer;
            self.stats.inc(Counter::UpstreamRetransmits);
            self.out.push_back(Transmit {
                socket: SocketRef::Upstream(key.socket),
                to: dest,
                payload,
            });
            return;
        }
        let pending = self.pending.remove(&key).expect("present");
        self.free_id(key);
        self.stats.inc(Counter::UpstreamTimeouts);
        self.stats.upstreams[u].timeouts += 1;
        self.health_failure(now, u);
        match pending.nas {
            None => self.upstreams[u].health.probe_in_flight = false,
            Some(nas) => {
                debug!(upstream = %self.upstreams[u].cfg.name, "no answer after {} tries: failing over", pending.sends);
                self.stats.inc(Counter::UpstreamFailovers);
                self.forward(now, nas);
            }
        }
    }

    fn probe(&mut self, now: Instant, u: usize) {
        let interval = self.proxy.check_interval;
        self.upstreams[u].health.next_probe = now + interval;
        let dest = self.upstreams[u].cfg.address;
        let Some((socket, id)) = self.alloc_id(u, &dest) else {
            return;
        };
        let key = PendingKey {
            socket,
            upstream: u as u16,
            id,
        };
        let mut auth = [0u8; AUTH_LEN];
        self.rng.fill_bytes(&mut auth);
        let mut b = PacketBuilder::new(Code::STATUS_SERVER, id, &auth);
        let _ = b.push_message_authenticator();
        let payload: Arc<[u8]> = b.finish_request(&self.upstreams[u].cfg.secret).into();
        let timer = self.arm(now, key, self.upstreams[u].cfg.timeout);
        self.upstreams[u].health.probe_in_flight = true;
        self.stats.inc(Counter::UpstreamProbes);
        self.out.push_back(Transmit {
            socket: SocketRef::Upstream(socket),
            to: dest,
            payload: payload.clone(),
        });
        self.pending.insert(
            key,
            Pending {
                nas: None,
                dest,
                payload,
                auth,
                proxy_state: [0; 8],
                sends: 1,
                first_sent: now,
                timer,
            },
        );
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_mfa;

#[cfg(test)]
mod tests_hardening;
