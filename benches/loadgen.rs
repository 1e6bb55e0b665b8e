//! Load generator and fast stand-in upstream for BENCHMARKS.md.
//!
//!   cargo bench --bench loadgen -- upstream ADDR SECRET
//!       answers every Access-Request with a signed Access-Accept, echoing
//!       Proxy-State (a RADIUS server that costs almost nothing).
//!   cargo bench --bench loadgen -- relay LISTEN UPSTREAM
//!       a proxy that does nothing: forwards each datagram to UPSTREAM and
//!       each answer back to its sender, changing only the identifier, on
//!       one tokio task as mfa-proxy's loop runs. It reads nothing, checks
//!       nothing and signs nothing: what any proxy on this machine pays in
//!       system calls and wake-ups alone (the floor in BENCHMARKS.md).
//!   cargo bench --bench loadgen -- login-relay LISTEN UPSTREAM
//!       the same no-op proxy in the shape of a login with a one-time code:
//!       a request without State is relayed, and the upstream's answer goes
//!       back as an Access-Challenge with a State added; a request with a
//!       State is answered Access-Accept at once. Six datagrams per login,
//!       nothing checked, nothing signed, no store: the floor under
//!       `mfa` (BENCHMARKS.md).
//!   cargo bench --bench loadgen -- memory-store CONFIG
//!       mfa-proxy itself, engine and loop as `serve` runs them, with the
//!       SQLite store replaced by one in memory that answers only what a
//!       login asks: every user u{i}, whatever i, has one active TOTP
//!       token with the bench seed, used steps are kept in a map (replays
//!       are still refused), denials and audit records are dropped. The
//!       ceiling for `mfa` that any store leaves (BENCHMARKS.md).
//!   cargo bench --bench loadgen -- memory-store CONFIG WRITES
//!       the same, but each batch of store jobs is one transaction on the
//!       SQLite store of CONFIG (populated with `populate`, so use users
//!       u0..u{USERS-1} only), as `serve` runs it, and WRITES says which of
//!       a login's writes go there: `claim,audit` (both: the step is
//!       claimed there too, and that claim decides), `claim`, `audit`, or
//!       `none` (empty transactions). `claim,audit` is the ceiling of any
//!       store that reads a login's state from memory and keeps what a
//!       login must keep in SQLite.
//!   cargo bench --bench loadgen -- populate DIR USERS [push]
//!       enrolls users u0..u{USERS-1} with TOTP tokens in DIR/mfa.db; with
//!       `push`, users p0..p{USERS-1} whose method is push instead.
//!   cargo bench --bench loadgen -- pending TARGET SECRET SINK USERS RATE SECONDS PID
//!       runs a provider at SINK (HTTP, answers every delivery 202 and never
//!       calls back), starts push logins for p0..p{USERS-1} at RATE per
//!       second, waits until every push was delivered, then measures PAP
//!       logins at 1,000/s for SECONDS (as `load rate`) while they are all
//!       pending; prints the resident memory of PID before and after.
//!   cargo bench --bench loadgen -- mfa TARGET SECRET MODE N SECONDS USERS [PID]
//!       complete two-round TOTP logins (MODE, N as for load); prints logins
//!       per second and p50/p99 of each round. Each user logs in at most
//!       twice per 30 s step; MFA_USER_OFFSET says where to start.
//!   cargo bench --bench loadgen -- load TARGET SECRET MODE N SECONDS [PID]
//!       MODE "rate": N requests per second, open loop;
//!       MODE "window": N requests in flight, closed loop (maximum rate).
//!       Prints achieved rate, latency p50/p99, and with PID the CPU time of
//!       that process per answered request and its resident memory.
//!
//! Every request has a fresh authenticator, so no proxy can answer it from
//! its duplicate cache. `load` and `mfa` run on one thread (see `drive`),
//! and the rate is over the measured time only (shorter, with a warning,
//! when the users run out).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mfa_proxy::mfa::otp::TotpParams;
use mfa_proxy::mfa::{LockoutPolicy, Method, Remembered};
use mfa_proxy::radius::{Code, Packet, PacketBuilder, attr, crypto};
use mfa_proxy::store::{
    AuditRecord, LoginStore, LoginTx, SealedSeed, Seed, StoreError, Token, UnixTime, UserFacts,
    Verification,
};

#[path = "common/mod.rs"]
mod common;

/// As in `serve` (src/main.rs), so that `memory-store` runs mfa-proxy as
/// shipped.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOCKETS: usize = 4;
/// How long a run waits for the answers still in flight at its end.
const DRAIN: Duration = Duration::from_millis(500);

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("upstream") => upstream(args[1].parse().expect("ADDR"), args[2].as_bytes()),
        Some("load") => load(&args[1..]),
        Some(verb @ ("relay" | "login-relay")) => relay(
            args[1].parse().expect("LISTEN"),
            args[2].parse().expect("UPSTREAM"),
            verb == "login-relay",
        ),
        Some("memory-store") => memory_store(
            std::path::Path::new(&args[1]),
            args.get(2).map(|w| Writes::parse(w)),
        ),
        Some("populate") => populate(
            std::path::Path::new(&args[1]),
            args[2].parse().expect("USERS"),
            args.get(3).is_some_and(|m| m == "push"),
        ),
        Some("pending") => pending(&args[1..]),
        Some("mfa") => mfa(&args[1..]),
        _ => eprintln!("usage: see the comment at the top of benches/loadgen.rs"),
    }
}

/// Receive buffers as large as the proxy's own (capped by the kernel at
/// net.core.rmem_max): with the default 208 KiB, a burst from the proxy
/// overflowed the stand-in's socket, and the soak's lost requests were all
/// dropped there, not in the proxy (benches/soak.sh shows where).
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers.
fn bind_udp(addr: SocketAddr) -> UdpSocket {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )
    .expect("socket");
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into()).expect("bind");
    s.into()
}

fn upstream(addr: SocketAddr, secret: &[u8]) {
    let s = bind_udp(addr);
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, from)) = s.recv_from(&mut buf) else {
            continue;
        };
        let Ok(p) = Packet::parse(&buf[..n]) else {
            continue;
        };
        let code = match p.code() {
            Code::ACCESS_REQUEST | Code::STATUS_SERVER => Code::ACCESS_ACCEPT,
            Code::ACCOUNTING_REQUEST => Code::ACCOUNTING_RESPONSE,
            _ => continue,
        };
        let mut b = PacketBuilder::new(code, p.identifier(), &[0; 16]);
        let _ = b.push_message_authenticator();
        let _ = b.push(attr::REPLY_MESSAGE, b"ok");
        for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
            let _ = b.push_raw(a.raw(&p));
        }
        let reply = b.finish_response(secret, p.authenticator());
        let _ = s.send_to(&reply, from);
    }
}

/// Runs mfa-proxy on the configuration at `config` with [`MemoryStore`].
fn memory_store(config: &std::path::Path, writes: Option<Writes>) {
    let config = mfa_proxy::config::Config::load(config).expect("configuration");
    let dict = Arc::new(mfa_proxy::radius::dict::Dictionary::builtin());
    let durable = writes.map(|writes| {
        let key = mfa_proxy::store::SeedKey::load_or_create(&config.store.key_file)
            .expect("the store's key");
        let store =
            mfa_proxy::store::SqliteStore::open(&config.store.path, key).expect("the store");
        Durable { store, writes }
    });
    let store = MemoryStore {
        durable,
        ..MemoryStore::default()
    };
    let proxy = mfa_proxy::io::Running::spawn(&config, dict, Some(Arc::new(store)))
        .expect("start the proxy");
    println!("listening on {:?}", proxy.listen_addrs);
    loop {
        std::thread::park();
    }
}

/// The store calls of a TOTP login, answered from memory (see
/// `memory-store` at the top). Everything else is refused.
#[derive(Debug, Default)]
struct MemoryStore {
    /// Token id -> last step used.
    last_step: std::sync::Mutex<std::collections::HashMap<i64, u64>>,
    /// Where a login's writes go, if anywhere.
    durable: Option<Durable>,
}

/// The SQLite store behind [`MemoryStore`], and what it is given.
#[derive(Debug)]
struct Durable {
    store: mfa_proxy::store::SqliteStore,
    writes: Writes,
}

#[derive(Clone, Copy, Debug)]
struct Writes {
    claim: bool,
    audit: bool,
}

impl Writes {
    fn parse(s: &str) -> Writes {
        let parts: Vec<&str> = s.split(',').collect();
        for p in &parts {
            assert!(
                matches!(*p, "claim" | "audit" | "none"),
                "WRITES: claim, audit, claim,audit or none, not {p:?}"
            );
        }
        Writes {
            claim: parts.contains(&"claim"),
            audit: parts.contains(&"audit"),
        }
    }
}

impl MemoryStore {
    /// The index of bench user u{i}.
    fn index(user: &str) -> Option<u64> {
        user.strip_prefix('u')?.parse().ok()
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, u64>> {
        self.last_step.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_here<T>() -> Result<T, StoreError> {
    Err(StoreError::database(
        "not part of a login: the memory store answers logins only",
        mfa_proxy::store::Retry::No,
    ))
}

impl LoginStore for MemoryStore {
    fn begin(&self) -> Result<Box<dyn LoginTx + '_>, StoreError> {
        let durable = self.durable.as_ref().map(|d| d.store.begin()).transpose()?;
        Ok(Box::new(MemoryTx {
            store: self,
            durable,
        }))
    }
    fn open_seed(&self, _: &Token, sealed: &SealedSeed) -> Result<Seed, StoreError> {
        Ok(Seed::new(sealed.0.clone()))
    }
    /// Not sealed: this store keeps nothing to protect.
    fn seal(&self, _: &str, data: &[u8]) -> Vec<u8> {
        data.to_vec()
    }
    fn open(&self, _: &str, sealed: &[u8]) -> Result<Seed, StoreError> {
        Ok(Seed::new(sealed.to_vec()))
    }
}

/// A login-path transaction of [`MemoryStore`], with one of its SQLite
/// store when the login's writes go there.
struct MemoryTx<'a> {
    store: &'a MemoryStore,
    durable: Option<Box<dyn LoginTx + 'a>>,
}

impl LoginTx for MemoryTx<'_> {
    fn facts(&mut self, user: &str, _now: UnixTime) -> Result<Option<UserFacts>, StoreError> {
        let Some(i) = MemoryStore::index(user) else {
            return Ok(None);
        };
        // `populate` enrolls u{i}'s token as row i + 1.
        let id = i as i64 + 1;
        let token = Token {
            id,
            active: true,
            last_step: self.store.steps().get(&id).copied(),
            ..Token::totp(user, TotpParams::default())
        };
        // Not sealed: this store keeps nothing to protect.
        let seed = SealedSeed(common::seed_for(i));
        Ok(Some(UserFacts {
            blocked: false,
            bypass_waiting: false,
            locked: false,
            tokens: Arc::from([(token, seed)]),
            method: Method::Totp,
            phone: None,
            pin: false,
            language: None,
            groups: Vec::new(),
            remembered: Vec::new(),
            busy: false,
            graced: Vec::new(),
            denied: false,
            disabled: None,
        }))
    }
    fn password_hash(&mut self, _: &str) -> Result<Option<String>, StoreError> {
        not_here()
    }
    fn pin_hash(&mut self, _: &str) -> Result<Option<String>, StoreError> {
        not_here()
    }
    fn claim_step(&mut self, id: i64, step: u64) -> Result<bool, StoreError> {
        let mut steps = self.store.steps();
        if steps.get(&id).is_some_and(|&used| used >= step) {
            return Ok(false);
        }
        let claims = self.store.durable.as_ref().is_some_and(|d| d.writes.claim);
        if let (true, Some(tx)) = (claims, self.durable.as_mut())
            && !tx.claim_step(id, step)?
        {
            return Ok(false);
        }
        steps.insert(id, step);
        Ok(true)
    }
    fn record_denial(
        &mut self,
        _: &str,
        _: UnixTime,
        _: &LockoutPolicy,
    ) -> Result<Option<UnixTime>, StoreError> {
        Ok(None)
    }
    fn clear_denials(&mut self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn take_bypass(&mut self, _: &str, _: UnixTime) -> Result<bool, StoreError> {
        not_here()
    }
    fn block(&mut self, _: &str, _: &str, _: UnixTime, _: UnixTime) -> Result<(), StoreError> {
        not_here()
    }
    /// A login may remember itself; this store keeps nothing.
    fn remember(&mut self, _: &str, _: &Remembered, _: UnixTime) -> Result<(), StoreError> {
        Ok(())
    }
    fn append_audit(&mut self, r: &AuditRecord) -> Result<(), StoreError> {
        let audits = self.store.durable.as_ref().is_some_and(|d| d.writes.audit);
        match (audits, self.durable.as_mut()) {
            (true, Some(tx)) => tx.append_audit(r),
            _ => Ok(()),
        }
    }
    fn prune_audit(&mut self, _: UnixTime, _: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn start_verification(&mut self, _: &Verification) -> Result<bool, StoreError> {
        not_here()
    }
    fn end_verification(&mut self, _: &str, _: &[u8], _: &str) -> Result<(), StoreError> {
        not_here()
    }
    fn verification(&mut self, _: &[u8], _: UnixTime) -> Result<Option<Verification>, StoreError> {
        not_here()
    }
    fn move_verification(&mut self, _: &[u8], _: &str, _: UnixTime) -> Result<bool, StoreError> {
        not_here()
    }
    fn put_answer(&mut self, _: &mfa_proxy::store::StoredAnswer) -> Result<bool, StoreError> {
        not_here()
    }
    fn take_answers(&mut self, _: &[Vec<u8>]) -> Result<mfa_proxy::store::KeptAnswers, StoreError> {
        not_here()
    }
    fn drop_challenge(&mut self, _: &[u8], _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn grant_grace(
        &mut self,
        _: &str,
        _: &str,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<(), StoreError> {
        not_here()
    }
    fn take_grace(&mut self, _: &str, _: &str, _: UnixTime) -> Result<bool, StoreError> {
        not_here()
    }
    /// The node's heartbeat: nothing to keep here.
    fn heartbeat(&mut self, _: &mfa_proxy::store::NodeSeen) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_challenge(&mut self, _: &mfa_proxy::store::StoredChallenge) -> Result<(), StoreError> {
        Ok(())
    }
    fn take_challenge(
        &mut self,
        _: &[u8],
        _: &str,
        _: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match self.durable {
            Some(tx) => tx.commit(),
            None => Ok(()),
        }
    }
}

fn relay(listen: SocketAddr, upstream: SocketAddr, login: bool) {
    use tokio::net::UdpSocket;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let nas = UdpSocket::bind(listen).await.expect("bind relay");
        let up = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        // Our identifier -> (the NAS, its identifier).
        let mut table: Vec<Option<(SocketAddr, u8)>> = vec![None; 256];
        let mut next = 0u8;
        let (mut from_nas, mut from_up) = ([0u8; 4096], [0u8; 4096]);
        loop {
            tokio::select! {
                Ok((n, from)) = nas.recv_from(&mut from_nas) => {
                    if n < 20 {
                        continue;
                    }
                    if login && Packet::parse(&from_nas[..n]).is_ok_and(|p| p.find(attr::STATE).is_some()) {
                        // The answer to our challenge: accept it.
                        from_nas[0] = Code::ACCESS_ACCEPT.0;
                        let _ = nas.send_to(&from_nas[..n], from).await;
                        continue;
                    }
                    next = next.wrapping_add(1);
                    table[usize::from(next)] = Some((from, from_nas[1]));
                    from_nas[1] = next;
                    let _ = up.send_to(&from_nas[..n], upstream).await;
                }
                Ok((n, _)) = up.recv_from(&mut from_up) => {
                    if n < 20 {
                        continue;
                    }
                    if let Some((to, id)) = table[usize::from(from_up[1])].take() {
                        from_up[1] = id;
                        let mut n = n;
                        if login && n + 18 <= from_up.len() {
                            // Challenge the user: a State of 16 octets.
                            from_up[0] = Code::ACCESS_CHALLENGE.0;
                            from_up[n] = attr::STATE;
                            from_up[n + 1] = 18;
                            from_up[n + 2..n + 18].copy_from_slice(&(n as u128).to_be_bytes());
                            n += 18;
                            from_up[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                        }
                        let _ = nas.send_to(&from_up[..n], to).await;
                    }
                }
            }
        }
    });
}

/// When the driver may start a request: MODE "rate" is open loop, one every
/// interval; MODE "window" is closed loop, at most N in flight.
struct Pacer {
    window: Option<u64>,
    interval: Duration,
    next_send: Instant,
}

impl Pacer {
    fn new(mode: &str, n: u64) -> Pacer {
        let rate = mode == "rate";
        Pacer {
            window: (!rate).then_some(n),
            interval: if rate {
                Duration::from_secs_f64(1.0 / n as f64)
            } else {
                Duration::ZERO
            },
            next_send: Instant::now(),
        }
    }

    /// `Ok` to start one now; otherwise when to look again (`None`: when an
    /// answer frees a place in the window).
    fn due(&mut self, now: Instant, in_flight: u64) -> Result<(), Option<Instant>> {
        match self.window {
            Some(n) if in_flight >= n => Err(None),
            Some(_) => Ok(()),
            None if now < self.next_send => Err(Some(self.next_send)),
            None => {
                self.next_send += self.interval;
                Ok(())
            }
        }
    }
}

/// A one-shot timer with microsecond precision. tokio's own timer ticks in
/// milliseconds: a rate run would send each millisecond's requests in one
/// burst instead of evenly spaced.
struct FineTimer(tokio::io::unix::AsyncFd<TimerFdRef>);

struct TimerFdRef(nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for TimerFdRef {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl FineTimer {
    fn new() -> FineTimer {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .expect("timerfd");
        // `AsyncFd::new` is deprecated for `register`, which is `unsafe`
        // (forbidden here). What `register` asks the caller to promise holds:
        // the AsyncFd owns the timer, so the descriptor stays open and the
        // same until it is dropped.
        #[allow(deprecated)]
        let fd = tokio::io::unix::AsyncFd::new(TimerFdRef(fd)).expect("register the timer");
        FineTimer(fd)
    }

    /// Fires once, `after` from now (at least 1 µs: zero would disarm it).
    /// Re-arming discards an expiry not yet read.
    fn arm(&self, after: Duration) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        let after = TimeSpec::from_duration(after.max(Duration::from_micros(1)));
        self.0
            .get_ref()
            .0
            .set(Expiration::OneShot(after), TimerSetTimeFlags::empty())
            .expect("arm the timer");
    }

    fn poll_fired(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        loop {
            let mut ready = match self.0.poll_read_ready(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            };
            match self.0.get_ref().0.wait() {
                Ok(()) => return Poll::Ready(()),
                // Seen readable before the last re-arm: not fired yet.
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(_) => return Poll::Ready(()),
            }
        }
    }
}

/// A run's traffic: how each exchange starts and what each answer leads to.
trait Workload {
    /// A new request with identifier `id`, and a tag given back with its
    /// answer; `None` when there is nothing left to start.
    fn start(&mut self, id: u8) -> Option<(Vec<u8>, u64)>;
    /// What to do with `p`, the answer to round `round` (1, 2, …) of the
    /// exchange tagged `tag`; a next round would use identifier `id`.
    fn answer(&mut self, round: usize, tag: u64, p: &Packet, id: u8) -> Step;
}

enum Step {
    /// The exchange ended as it should.
    Done,
    /// The exchange ended otherwise (a reject, an unexpected answer).
    Failed,
    /// Send this as the next round, on the same socket, tagged so.
    Then(Vec<u8>, u64),
}

/// One request on the wire.
#[derive(Clone, Copy)]
struct InFlight {
    sent: Instant,
    round: usize,
    tag: u64,
}

/// The requests on the wire, by socket and identifier.
struct Wire {
    slots: Vec<Option<InFlight>>,
    next_id: [u8; SOCKETS],
    in_flight: u64,
    lost: u64,
}

impl Wire {
    fn new() -> Wire {
        Wire {
            slots: vec![None; SOCKETS * 256],
            next_id: [0; SOCKETS],
            in_flight: 0,
            lost: 0,
        }
    }

    fn slot(&mut self, si: usize, id: u8) -> &mut Option<InFlight> {
        &mut self.slots[si * 256 + usize::from(id)]
    }

    /// A free identifier on socket `si`. A request unanswered for 5 s is
    /// counted lost and its identifier reused.
    fn claim(&mut self, si: usize, now: Instant) -> Option<u8> {
        for k in 0..=255u8 {
            let id = self.next_id[si].wrapping_add(k);
            let slot = self.slot(si, id);
            match slot {
                Some(f) if now.duration_since(f.sent) < Duration::from_secs(5) => continue,
                Some(_) => {
                    *slot = None;
                    self.lost += 1;
                    self.in_flight -= 1;
                }
                None => {}
            }
            self.next_id[si] = id.wrapping_add(1);
            return Some(id);
        }
        None
    }
}

/// What a run measured.
struct Report {
    /// Exchanges started, warm-up included.
    started: u64,
    /// Exchanges started after the warm-up.
    sent: u64,
    /// Exchanges done, of those whose last round was sent after the warm-up.
    done: u64,
    failed: u64,
    /// Requests never answered (reclaimed after 5 s or left at the end).
    lost: u64,
    /// Latency per round, nanoseconds.
    rounds: Vec<Vec<u64>>,
    /// The measured time: shorter than asked when the workload ran out.
    measured: Duration,
    cpu_s: Option<f64>,
    rss_before: u64,
    rss_after: u64,
    /// Answers the kernel dropped on the generator's own sockets.
    kernel_drops: u64,
}

impl Report {
    fn rate(&self) -> f64 {
        self.done as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// p50 and p99 of round `r` (1-based), in microseconds.
    fn latency(&mut self, r: usize) -> (f64, f64) {
        match self.rounds.get_mut(r - 1) {
            Some(v) => (percentile_us(v, 0.5), percentile_us(v, 0.99)),
            None => (0.0, 0.0),
        }
    }

    /// ` cpu=… cpu_per_<unit>=… rss_before=… rss_after=…` when a PID was given.
    fn cpu(&self, unit: &str) -> String {
        self.cpu_s.map_or_else(String::new, |cpu_s| {
            format!(
                " cpu={cpu_s:.2}s cpu_per_{unit}={:.1}us rss_before={}KiB rss_after={}KiB",
                cpu_s * 1e6 / self.done.max(1) as f64,
                self.rss_before,
                self.rss_after
            )
        })
    }
}

/// Runs `w` against `target` for a one-second warm-up and then `seconds`,
/// on one thread: each wake-up reads every answer that has arrived, sends
/// the next rounds, then starts what the pacer allows. A NAS concentrating
/// many users works the same way; a thread per socket would spend the
/// machine's two cores on wake-ups that the proxy under test then lacks.
fn drive(
    w: &mut impl Workload,
    target: SocketAddr,
    mut pacer: Pacer,
    seconds: u64,
    pid: Option<&str>,
) -> Report {
    use std::task::Poll;
    use tokio::io::ReadBuf;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Read through tokio; send straight on a duplicate of the socket,
        // which does not wait for tokio to have seen it writable.
        let (sockets, senders): (Vec<tokio::net::UdpSocket>, Vec<UdpSocket>) = (0..SOCKETS)
            .map(|_| {
                let s = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)));
                s.set_nonblocking(true).expect("nonblocking");
                let send = s.try_clone().expect("dup");
                (tokio::net::UdpSocket::from_std(s).expect("register"), send)
            })
            .unzip();
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(1);
        let mut stop_at = measure_from + Duration::from_secs(seconds);
        let mut wire = Wire::new();
        let mut r = Report {
            started: 0,
            sent: 0,
            done: 0,
            failed: 0,
            lost: 0,
            rounds: Vec::new(),
            measured: Duration::ZERO,
            cpu_s: None,
            rss_before: pid.map_or(0, proc_rss_kib),
            rss_after: 0,
            kernel_drops: 0,
        };
        let (mut seq, mut cpu0, mut cpu1, mut ran_out) = (0usize, None, None, false);
        let mut buf = vec![0u8; 4096];
        let timer = FineTimer::new();
        std::future::poll_fn(|cx| {
            loop {
                let now = Instant::now();
                if cpu0.is_none() && now >= measure_from {
                    cpu0 = pid.map(proc_cpu_ticks);
                }
                let sending = now < stop_at;
                if !sending && cpu1.is_none() {
                    cpu1 = pid.map(proc_cpu_ticks);
                }
                if !sending && (wire.in_flight == 0 || now >= stop_at + DRAIN) {
                    return Poll::Ready(());
                }
                let mut progressed = false;
                for (si, sock) in sockets.iter().enumerate() {
                    for _ in 0..256 {
                        let mut rb = ReadBuf::new(&mut buf);
                        match sock.poll_recv_from(cx, &mut rb) {
                            Poll::Ready(Ok(_)) => progressed = true,
                            Poll::Ready(Err(_)) => {
                                progressed = true;
                                continue;
                            }
                            Poll::Pending => break,
                        }
                        let Ok(p) = Packet::parse(rb.filled()) else {
                            continue;
                        };
                        let Some(f) = wire.slot(si, p.identifier()).take() else {
                            continue;
                        };
                        let measured = f.sent >= measure_from && f.sent < stop_at;
                        if measured {
                            if r.rounds.len() < f.round {
                                r.rounds.resize_with(f.round, Vec::new);
                            }
                            // Now, not the turn's start: this turn may have sent it.
                            let took = f.sent.elapsed().as_nanos() as u64;
                            r.rounds[f.round - 1].push(took);
                        }
                        let Some(id) = wire.claim(si, now) else {
                            wire.in_flight -= 1;
                            r.failed += 1;
                            continue;
                        };
                        match w.answer(f.round, f.tag, &p, id) {
                            Step::Then(pkt, tag) => {
                                *wire.slot(si, id) = Some(InFlight {
                                    sent: Instant::now(),
                                    round: f.round + 1,
                                    tag,
                                });
                                let _ = senders[si].send_to(&pkt, target);
                            }
                            Step::Done => {
                                wire.in_flight -= 1;
                                r.done += u64::from(measured);
                            }
                            Step::Failed => {
                                wire.in_flight -= 1;
                                r.failed += 1;
                            }
                        }
                    }
                }
                let mut wake = None;
                while sending && !ran_out {
                    match pacer.due(now, wire.in_flight) {
                        Ok(()) => {}
                        Err(at) => {
                            wake = at;
                            break;
                        }
                    }
                    let si = seq % SOCKETS;
                    seq += 1;
                    let Some(id) = wire.claim(si, now) else {
                        break;
                    };
                    let Some((pkt, tag)) = w.start(id) else {
                        eprintln!(
                            "the workload ran out after {:.1}s: the rate is over that time",
                            now.duration_since(measure_from).as_secs_f64()
                        );
                        ran_out = true;
                        stop_at = now.max(measure_from);
                        break;
                    };
                    let sent = Instant::now();
                    *wire.slot(si, id) = Some(InFlight {
                        sent,
                        round: 1,
                        tag,
                    });
                    wire.in_flight += 1;
                    r.started += 1;
                    r.sent += u64::from(sent >= measure_from);
                    let _ = senders[si].send_to(&pkt, target);
                    progressed = true;
                }
                if progressed {
                    continue;
                }
                // Nothing to read or send: sleep until an answer, the pacer
                // or the end of the run.
                let until = if sending {
                    wake.map_or(stop_at, |t| t.min(stop_at))
                } else {
                    stop_at + DRAIN
                };
                // At least 50 µs, as the old sender's sleeps were: at high
                // rates a timer per request would cost the generator more
                // than its sends, and it would fall behind in bursts.
                let wait = until.saturating_duration_since(Instant::now());
                timer.arm(wait.max(Duration::from_micros(50)));
                if timer.poll_fired(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        })
        .await;
        if let (Some(pid), Some(c0), Some(c1)) = (pid, cpu0, cpu1) {
            r.cpu_s = Some(c1.saturating_sub(c0) as f64 / 100.0);
            r.rss_after = proc_rss_kib(pid);
        }
        r.lost = wire.lost + wire.in_flight;
        r.measured = stop_at.saturating_duration_since(measure_from);
        r.kernel_drops = own_udp_drops();
        drop(sockets);
        r
    })
}

/// The `p` quantile of latencies in nanoseconds, in microseconds.
fn percentile_us(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0) as f64
        / 1000.0
}

fn proc_cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn proc_rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A PAP Access-Request for `user` with a fresh authenticator.
fn request(id: u8, seq: u64, user: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut auth = [0u8; 16];
    auth[..8].copy_from_slice(&seq.to_be_bytes());
    auth[8..].copy_from_slice(&0x6d66_612d_7072_6f78u64.to_be_bytes());
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    let _ = b.push_message_authenticator();
    let _ = b.push(attr::USER_NAME, user);
    let _ = b.push(
        attr::USER_PASSWORD,
        &crypto::hide_password(b"bench-password", secret, &auth).expect("hide"),
    );
    let _ = b.push(attr::NAS_IP_ADDRESS, &[127, 0, 0, 1]);
    let _ = b.push(5, &7u32.to_be_bytes());
    b.finish_request(secret)
}

/// PAP requests for one user, each answered once.
struct Plain {
    secret: Vec<u8>,
    seq: u64,
}

impl Workload for Plain {
    fn start(&mut self, id: u8) -> Option<(Vec<u8>, u64)> {
        self.seq += 1;
        Some((request(id, self.seq, b"bench-user", &self.secret), 0))
    }

    fn answer(&mut self, _: usize, _: u64, _: &Packet, _: u8) -> Step {
        Step::Done
    }
}

/// The arguments `load` and `mfa` start with: TARGET SECRET MODE N SECONDS.
struct RunArgs {
    target: SocketAddr,
    secret: Vec<u8>,
    mode: String,
    n: u64,
    seconds: u64,
}

impl RunArgs {
    fn parse(args: &[String]) -> RunArgs {
        RunArgs {
            target: args[0].parse().expect("TARGET"),
            secret: args[1].clone().into_bytes(),
            mode: args[2].clone(),
            n: args[3].parse().expect("N"),
            seconds: args[4].parse().expect("SECONDS"),
        }
    }

    /// Drives `w` as the arguments say. Returns the report and the start of
    /// the result line (`mode=… n=…`).
    fn drive(&self, w: &mut impl Workload, pid: Option<&str>) -> (Report, String) {
        let pacer = Pacer::new(&self.mode, self.n);
        let r = drive(w, self.target, pacer, self.seconds, pid);
        (r, format!("mode={} n={}", self.mode, self.n))
    }
}

fn load(args: &[String]) {
    let run = RunArgs::parse(args);
    let mut w = Plain {
        secret: run.secret.clone(),
        seq: 0,
    };
    let (mut r, head) = run.drive(&mut w, args.get(5).map(String::as_str));
    let (p50, p99) = r.latency(1);
    println!(
        "{head} sent={} answered={} rate={:.0}/s p50={p50:.1}us p99={p99:.1}us{}{}",
        r.sent,
        r.done,
        r.rate(),
        r.cpu("req"),
        lost(&r)
    );
}

/// ` lost=N` when requests went unanswered, and ` generator_drops=N` when
/// the kernel dropped answers on the generator's own sockets.
fn lost(r: &Report) -> String {
    let mut s = String::new();
    if r.lost > 0 {
        s.push_str(&format!(" lost={}", r.lost));
    }
    if r.kernel_drops > 0 {
        s.push_str(&format!(" generator_drops={}", r.kernel_drops));
    }
    s
}

/// Datagrams the kernel dropped on this process's UDP sockets (the drops
/// column of /proc/net/udp for the inodes in /proc/self/fd).
fn own_udp_drops() -> u64 {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    inodes
                        .contains(*f.get(9)?)
                        .then(|| f.get(12)?.parse::<u64>().ok())?
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Two-round TOTP logins of users u0…u{users-1}: the password, then the
/// code the Access-Challenge asks for, sent with its State.
struct Logins {
    secret: Vec<u8>,
    users: u64,
    /// Logins started so far, counting from MFA_USER_OFFSET: login `k` is
    /// user `k % users`'s `k / users`-th of this step.
    next: u64,
    seq: u64,
}

impl Workload for Logins {
    fn start(&mut self, id: u8) -> Option<(Vec<u8>, u64)> {
        let (user, wrap) = (self.next % self.users, self.next / self.users);
        if wrap > 1 {
            // Every user has logged in twice this step: no valid code is left.
            return None;
        }
        let pkt = common::mfa_request(id, self.seq, user, b"bench-password", None, &self.secret);
        self.seq += 1;
        self.next += 1;
        Some((pkt, self.next - 1))
    }

    fn answer(&mut self, round: usize, login: u64, p: &Packet, id: u8) -> Step {
        use mfa_proxy::mfa::otp::{TotpParams, totp_code};
        match (round, p.code()) {
            (1, Code::ACCESS_CHALLENGE) => {
                let (user, wrap) = (login % self.users, login / self.users);
                let state = p.find(attr::STATE).map(|a| a.value).unwrap_or_default();
                // A user's second login in a step uses the next step's code
                // (inside the ±1 window, newer than the one used).
                let code = totp_code(
                    &TotpParams::default(),
                    &common::seed_for(user),
                    unix_now() + 30 * wrap,
                );
                let pkt = common::mfa_request(
                    id,
                    self.seq,
                    user,
                    code.as_bytes(),
                    Some(state),
                    &self.secret,
                );
                self.seq += 1;
                Step::Then(pkt, login)
            }
            (2, Code::ACCESS_ACCEPT) => Step::Done,
            _ => Step::Failed,
        }
    }
}

fn mfa(args: &[String]) {
    let run = RunArgs::parse(args);
    let users: u64 = args[5].parse().expect("USERS");
    // Each user can log in twice per 30 s step: consecutive runs start
    // where the previous one stopped (MFA_USER_OFFSET).
    let offset = std::env::var("MFA_USER_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut w = Logins {
        secret: run.secret.clone(),
        users,
        next: offset,
        seq: 0,
    };
    let (mut r, head) = run.drive(&mut w, args.get(6).map(String::as_str));
    let ((p50_1, p99_1), (p50_2, p99_2)) = (r.latency(1), r.latency(2));
    println!(
        "{head} started={} logins={} failed={} rate={:.0}/s round1 p50={p50_1:.1}us p99={p99_1:.1}us round2 p50={p50_2:.1}us p99={p99_2:.1}us{}{}",
        r.started,
        r.done,
        r.failed,
        r.rate(),
        r.cpu("login"),
        lost(&r)
    );
}

fn populate(dir: &std::path::Path, users: u64, push: bool) {
    let start = Instant::now();
    common::populate(dir, users, push);
    println!(
        "populated {users} users in {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

/// A provider that takes every delivery (HTTP/1.1 keep-alive, 202) and
/// never calls back; counts the deliveries.
fn provider_sink(addr: SocketAddr, delivered: Arc<AtomicU64>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind(addr).expect("bind the provider sink");
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let delivered = delivered.clone();
            std::thread::spawn(move || {
                let Ok(mut r) = conn.try_clone().map(BufReader::new) else {
                    return;
                };
                let mut line = String::new();
                loop {
                    let mut len = 0usize;
                    // Request line and headers.
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    delivered.fetch_add(1, Ordering::AcqRel);
                    if conn
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

fn pending(args: &[String]) {
    let target: SocketAddr = args[0].parse().expect("TARGET");
    let secret = args[1].clone().into_bytes();
    let sink: SocketAddr = args[2].parse().expect("SINK");
    let users: u64 = args[3].parse().expect("USERS");
    let rate: u64 = args[4].parse().expect("RATE");
    let seconds = args[5].clone();
    let pid = args[6].clone();
    let delivered = Arc::new(AtomicU64::new(0));
    provider_sink(sink, delivered.clone());

    let rss_idle = proc_rss_kib(&pid);
    // Each held request keeps its identifier: 256 per socket.
    let sockets: Vec<UdpSocket> = (0..users.div_ceil(256))
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let start = Instant::now();
    for i in 0..users {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let name = format!("p{i}");
        let pkt = request((i % 256) as u8, i, name.as_bytes(), &secret);
        let _ = sockets[(i / 256) as usize].send_to(&pkt, target);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Acquire) < users && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent_in = start.elapsed().as_secs_f64();
    let rss_pending = proc_rss_kib(&pid);
    // Nothing may have been answered: every push is still pending.
    let answered = || {
        let mut buf = [0u8; 4096];
        sockets
            .iter()
            .map(|s| std::iter::from_fn(|| s.recv_from(&mut buf).ok()).count())
            .sum::<usize>()
    };
    println!(
        "pushes={users} delivered={} in {sent_in:.1}s answered_meanwhile={} rss_idle={rss_idle}KiB rss_pending={rss_pending}KiB extra={}KiB",
        delivered.load(Ordering::Acquire),
        answered(),
        rss_pending.saturating_sub(rss_idle)
    );
    let target = args[0].clone();
    let secret = args[1].clone();
    load(&[
        target,
        secret,
        "rate".into(),
        "1000".into(),
        seconds,
        pid.clone(),
    ]);
    println!(
        "after: pushes answered={} rss={}KiB",
        answered(),
        proc_rss_kib(&pid)
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
