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
//!       per second and p50/p99 of each round.
//!   cargo bench --bench loadgen -- load TARGET SECRET MODE N SECONDS [PID]
//!       MODE "rate": N requests per second, open loop;
//!       MODE "window": N requests in flight, closed loop (maximum rate).
//!       Prints achieved rate, latency p50/p99, and with PID the CPU time of
//!       that process per answered request and its resident memory.
//!
//! Every request has a fresh authenticator, so no proxy can answer it from
//! its duplicate cache.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mfa_proxy::radius::{Code, Packet, PacketBuilder, attr, crypto};

#[path = "common/mod.rs"]
mod common;

const SOCKETS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("upstream") => upstream(args[1].parse().expect("ADDR"), args[2].as_bytes()),
        Some("load") => load(&args[1..]),
        Some("relay") => relay(
            args[1].parse().expect("LISTEN"),
            args[2].parse().expect("UPSTREAM"),
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

fn upstream(addr: SocketAddr, secret: &[u8]) {
    let s = UdpSocket::bind(addr).expect("bind upstream");
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

fn relay(listen: SocketAddr, upstream: SocketAddr) {
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
                        let _ = nas.send_to(&from_up[..n], to).await;
                    }
                }
            }
        }
    });
}

/// When the sender may send: MODE "rate" is open loop, one request per
/// interval, in small bursts with sleeps between them so the generator does
/// not spin a core away from the proxy under test; MODE "window" is closed
/// loop, at most N in flight.
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

    /// Whether to send one now. If not, it has waited a little (a sleep in
    /// rate mode, `idle` in window mode); ask again.
    fn ready(&mut self, in_flight: u64, idle: impl FnOnce()) -> bool {
        match self.window {
            Some(n) if in_flight >= n => {
                idle();
                false
            }
            Some(_) => true,
            None => {
                let now = Instant::now();
                if now < self.next_send {
                    std::thread::sleep((self.next_send - now).min(Duration::from_micros(200)));
                    return false;
                }
                self.next_send += self.interval;
                true
            }
        }
    }
}

/// The load generator's client sockets, each waking every 100 ms to see
/// whether the run is over.
fn client_sockets() -> Vec<Arc<UdpSocket>> {
    (0..SOCKETS)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            Arc::new(s)
        })
        .collect()
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

fn load(args: &[String]) {
    let target: SocketAddr = args[0].parse().expect("TARGET");
    let secret = args[1].clone().into_bytes();
    let mode = args[2].clone();
    let n: u64 = args[3].parse().expect("N");
    let seconds: u64 = args[4].parse().expect("SECONDS");
    let pid = args.get(5).cloned();

    let start = Instant::now();
    let sockets = client_sockets();
    // Send time (ns since start, 0 = free) per socket and identifier.
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..SOCKETS * 256).map(|_| AtomicU64::new(0)).collect());
    let in_flight = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let warmup = Duration::from_secs(1);

    let receivers: Vec<_> = sockets
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let (s, sent_at, in_flight, stop) =
                (s.clone(), sent_at.clone(), in_flight.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut answered = 0u64;
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, _)) = s.recv_from(&mut buf) else {
                        continue;
                    };
                    if len < 20 {
                        continue;
                    }
                    let slot = &sent_at[si * 256 + usize::from(buf[1])];
                    let t = slot.swap(0, Ordering::AcqRel);
                    if t == 0 {
                        continue;
                    }
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    let now = start.elapsed().as_nanos() as u64;
                    if Duration::from_nanos(t) >= warmup {
                        answered += 1;
                        lat.push(now - t);
                    }
                }
                (answered, lat)
            })
        })
        .collect();

    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs(seconds);
    let mut cpu0 = None;
    let mut seq = 0u64;
    let mut sent = 0u64;
    let mut next_id = [0u8; SOCKETS];
    let mut pacer = Pacer::new(&mode, n);
    let rss_before = pid.as_deref().map(proc_rss_kib);
    while Instant::now() < end {
        if cpu0.is_none() && Instant::now() >= measure_from {
            cpu0 = pid.as_deref().map(proc_cpu_ticks);
        }
        // Window mode spins: the maximum rate needs every request sent at once.
        if !pacer.ready(in_flight.load(Ordering::Acquire), std::hint::spin_loop) {
            continue;
        }
        let si = (seq as usize) % SOCKETS;
        // Find a free identifier on this socket (a lost packet's slot is
        // reclaimed after a second).
        let now_ns = start.elapsed().as_nanos() as u64;
        let mut id = None;
        for k in 0..=255u8 {
            let cand = next_id[si].wrapping_add(k);
            let slot = &sent_at[si * 256 + usize::from(cand)];
            let t = slot.load(Ordering::Acquire);
            if t == 0 || now_ns.saturating_sub(t) > 1_000_000_000 {
                if t != 0 {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                id = Some(cand);
                break;
            }
        }
        let Some(id) = id else { continue };
        next_id[si] = id.wrapping_add(1);
        let pkt = request(id, seq, b"bench-user", &secret);
        seq += 1;
        sent_at[si * 256 + usize::from(id)]
            .store(start.elapsed().as_nanos().max(1) as u64, Ordering::Release);
        in_flight.fetch_add(1, Ordering::AcqRel);
        if sockets[si].send_to(&pkt, target).is_ok() && Instant::now() >= measure_from {
            sent += 1;
        }
    }
    let cpu1 = pid.as_deref().map(proc_cpu_ticks);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    let mut lat = Vec::new();
    for r in receivers {
        let (a, l) = r.join().expect("receiver");
        answered += a;
        lat.extend(l);
    }
    let mut pct = |p: f64| percentile_us(&mut lat, p);
    let rate = answered as f64 / seconds as f64;
    print!(
        "mode={mode} n={n} sent={sent} answered={answered} rate={rate:.0}/s p50={:.1}us p99={:.1}us",
        pct(0.50),
        pct(0.99)
    );
    if let (Some(pid), Some(c0), Some(c1)) = (pid.as_deref(), cpu0, cpu1) {
        let hz = 100.0; // USER_HZ on Linux
        let cpu_s = (c1 - c0) as f64 / hz;
        print!(
            " cpu={cpu_s:.2}s cpu_per_req={:.1}us rss_before={}KiB rss_after={}KiB",
            cpu_s * 1e6 / answered.max(1) as f64,
            rss_before.unwrap_or(0),
            proc_rss_kib(pid)
        );
    }
    println!();
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

/// Per socket and identifier: when sent (ns since start, 0 = free), which
/// round (1, 2) and which user.
struct Slots {
    sent: Vec<AtomicU64>,
    what: Vec<AtomicU64>,
    next: Vec<AtomicU64>,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            sent: (0..SOCKETS * 256).map(|_| AtomicU64::new(0)).collect(),
            what: (0..SOCKETS * 256).map(|_| AtomicU64::new(0)).collect(),
            next: (0..SOCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Claims a free identifier on socket `si` (a slot is reclaimed after 5 s).
    fn claim(&self, si: usize, now_ns: u64, round: u64, user: u64) -> Option<u8> {
        for _ in 0..256 {
            let id = (self.next[si].fetch_add(1, Ordering::AcqRel) % 256) as u8;
            let slot = &self.sent[si * 256 + usize::from(id)];
            let t = slot.load(Ordering::Acquire);
            if (t == 0 || now_ns.saturating_sub(t) > 5_000_000_000)
                && slot
                    .compare_exchange(t, now_ns.max(1), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                self.what[si * 256 + usize::from(id)]
                    .store((round << 48) | user, Ordering::Release);
                return Some(id);
            }
        }
        None
    }
}

fn mfa(args: &[String]) {
    use mfa_proxy::mfa::otp::{TotpParams, totp_code};
    let target: SocketAddr = args[0].parse().expect("TARGET");
    let secret = args[1].clone().into_bytes();
    let mode = args[2].clone();
    let n: u64 = args[3].parse().expect("N");
    let seconds: u64 = args[4].parse().expect("SECONDS");
    let users: u64 = args[5].parse().expect("USERS");
    let pid = args.get(6).cloned();
    let start = Instant::now();
    let sockets = client_sockets();
    let slots = Arc::new(Slots::new());
    let in_flight = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_secs(1);
    let receivers: Vec<_> = sockets
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let (s, slots, in_flight, stop, seq, secret) = (
                s.clone(),
                slots.clone(),
                in_flight.clone(),
                stop.clone(),
                seq.clone(),
                secret.clone(),
            );
            std::thread::spawn(move || {
                let (mut r1, mut r2, mut done, mut failed) = (Vec::new(), Vec::new(), 0u64, 0u64);
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, _)) = s.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(p) = Packet::parse(&buf[..len]) else {
                        continue;
                    };
                    let k = si * 256 + usize::from(p.identifier());
                    let t = slots.sent[k].swap(0, Ordering::AcqRel);
                    if t == 0 {
                        continue;
                    }
                    let what = slots.what[k].load(Ordering::Acquire);
                    let (round, user) = (what >> 48, what & 0xffff_ffff_ffff);
                    let now = start.elapsed().as_nanos() as u64;
                    let measured = Duration::from_nanos(t) >= warmup;
                    match (round, p.code()) {
                        (1, Code::ACCESS_CHALLENGE) => {
                            if measured {
                                r1.push(now - t);
                            }
                            let state = p
                                .find(attr::STATE)
                                .map(|a| a.value.to_vec())
                                .unwrap_or_default();
                            // A user's second login in a step uses the next step's code
                            // (inside the ±1 window, newer than the one used).
                            let (wrap, user) = (user >> 40, user & 0xff_ffff_ffff);
                            let code = totp_code(
                                &TotpParams::default(),
                                &common::seed_for(user),
                                unix_now() + 30 * wrap,
                            );
                            let user = user | (wrap << 40);
                            if let Some(id) = slots.claim(si, now, 2, user) {
                                let pkt = common::mfa_request(
                                    id,
                                    seq.fetch_add(1, Ordering::AcqRel),
                                    user & 0xff_ffff_ffff,
                                    code.as_bytes(),
                                    Some(&state),
                                    &secret,
                                );
                                let _ = s.send_to(&pkt, target);
                            }
                        }
                        (2, Code::ACCESS_ACCEPT) => {
                            in_flight.fetch_sub(1, Ordering::AcqRel);
                            if measured {
                                r2.push(now - t);
                                done += 1;
                            }
                        }
                        _ => {
                            in_flight.fetch_sub(1, Ordering::AcqRel);
                            failed += 1;
                        }
                    }
                }
                (r1, r2, done, failed)
            })
        })
        .collect();
    let measure_from = start + warmup;
    let end = measure_from + Duration::from_secs(seconds);
    let mut pacer = Pacer::new(&mode, n);
    // Each user can log in once per 30 s step: consecutive runs start where
    // the previous one stopped (MFA_USER_OFFSET).
    let mut user: u64 = std::env::var("MFA_USER_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first_user = user;
    let mut cpu0 = None;
    let rss_before = pid.as_deref().map(proc_rss_kib);
    while Instant::now() < end {
        if cpu0.is_none() && Instant::now() >= measure_from {
            cpu0 = pid.as_deref().map(proc_cpu_ticks);
        }
        let idle = || std::thread::sleep(Duration::from_micros(50));
        if !pacer.ready(in_flight.load(Ordering::Acquire), idle) {
            continue;
        }
        let wrap = user / users;
        if wrap > 1 {
            // Every user has logged in twice this step: no valid code is left.
            break;
        }
        let si = (user as usize) % SOCKETS;
        let Some(id) = slots.claim(
            si,
            start.elapsed().as_nanos() as u64,
            1,
            (user % users) | (wrap << 40),
        ) else {
            continue;
        };
        let pkt = common::mfa_request(
            id,
            seq.fetch_add(1, Ordering::AcqRel),
            user % users,
            b"bench-password",
            None,
            &secret,
        );
        in_flight.fetch_add(1, Ordering::AcqRel);
        let _ = sockets[si].send_to(&pkt, target);
        user += 1;
    }
    let cpu1 = pid.as_deref().map(proc_cpu_ticks);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut r1, mut r2, mut done, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    for r in receivers {
        let (a, b, d, f) = r.join().expect("receiver");
        r1.extend(a);
        r2.extend(b);
        done += d;
        failed += f;
    }
    let pct = percentile_us;
    print!(
        "mode={mode} n={n} started={} logins={done} failed={failed} rate={:.0}/s round1 p50={:.1}us p99={:.1}us round2 p50={:.1}us p99={:.1}us",
        user - first_user,
        done as f64 / seconds as f64,
        pct(&mut r1, 0.5),
        pct(&mut r1, 0.99),
        pct(&mut r2, 0.5),
        pct(&mut r2, 0.99)
    );
    if let (Some(pid), Some(c0), Some(c1)) = (pid.as_deref(), cpu0, cpu1) {
        let cpu_s = (c1 - c0) as f64 / 100.0;
        print!(
            " cpu={cpu_s:.2}s cpu_per_login={:.1}us rss_before={}KiB rss_after={}KiB",
            cpu_s * 1e6 / done.max(1) as f64,
            rss_before.unwrap_or(0),
            proc_rss_kib(pid)
        );
    }
    println!();
}
