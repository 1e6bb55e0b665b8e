//! PostgreSQL restarted under load (issue 16): two nodes on a PostgreSQL
//! server of their own, and a steady stream of complete TOTP logins to
//! both (the password, then the code answering the challenge; now and then
//! a wrong code first). The server is stopped for a few seconds and started
//! again; the nodes are not touched. Checked:
//!
//! - while it is down no login is accepted, not even a right code answering
//!   a challenge issued just before (its use could not be recorded);
//! - afterwards both nodes accept complete logins again by themselves
//!   (within a generous bound), and every later login goes through;
//! - at no point is a wrong code, or a password alone, accepted;
//! - every Accept the NAS received has its audit record;
//! - each node counted the outage in /metrics (`mfa_store_failures`) and
//!   logged it (a few lines, not one per login) and its end, without the
//!   database's password.
//!
//! The logins come from a small NAS of our own (the crate's packet
//! builder, a socket per login, every answer's authenticator checked),
//! not radclient: several logins a second from four threads would be
//! hundreds of radclient processes. The users are written through the
//! store API (as `user add` and `totp enroll` write them): four hundred
//! through the command line would take longer than the test.

#[path = "support/cluster.rs"]
mod cluster;
mod common;
#[path = "support/pg_server.rs"]
mod pg_server;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, Killed, metric, metrics, now, serve};
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::radius::{AUTH_LEN, Code, Packet, PacketBuilder, attr, crypto};
use mfa_proxy::store::{PgStore, SeedKey, Store, Token, User};

/// The NAS secret of the shipped configuration.
const SECRET: &[u8] = b"testing123";
const PASSWORD: &str = "recovery-pass";
/// Login threads per node, each with users of its own.
const THREADS_PER_NODE: usize = 2;
const USERS_PER_THREAD: u64 = 100;
/// A thread starts a login at most this often.
const PACE: Duration = Duration::from_millis(200);
/// Every fourth login answers its first challenge with a wrong code.
const WRONG_EVERY: u64 = 4;
/// How long the NAS waits for an answer (one try).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long PostgreSQL stays down.
const OUTAGE: Duration = Duration::from_secs(4);
/// Accepted logins each node must show, before the outage and after it.
const ACCEPTS: usize = 5;
/// Generous bounds on waiting for them.
const BEFORE_BOUND: Duration = Duration::from_secs(20);
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// Which request of a login an exchange was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    Password,
    WrongCode,
    Code,
}

/// One request and its answer, as the NAS saw them.
#[derive(Clone, Debug)]
struct Exchange {
    node: usize,
    /// Logins are numbered across all threads.
    login: u64,
    user: u64,
    round: Round,
    sent: Instant,
    /// When the answer came and its code; `None`: none within
    /// [`ANSWER_WAIT`].
    answer: Option<(Instant, Code)>,
}

impl Exchange {
    fn accepted(&self) -> bool {
        self.answer.is_some_and(|(_, c)| c == Code::ACCESS_ACCEPT)
    }
}

/// What the login threads saw, shared with the test.
type Log = Arc<Mutex<Vec<Exchange>>>;

fn user_name(i: u64) -> String {
    format!("r{i}")
}

fn seed(i: u64) -> Vec<u8> {
    format!("recovery-seed-{i:06}").into_bytes()
}

fn code_at_step(user: u64, step: u64) -> String {
    totp_code(&TotpParams::default(), &seed(user), step * 30)
}

/// Users r0…r{n-1}, each with the password and an active TOTP token,
/// written through the store as `user add` and `totp enroll` write them.
fn enroll(url: &str, key_file: &std::path::Path, n: u64) {
    let key = SeedKey::load(key_file).expect("key");
    let store = PgStore::connect(url, key, 1).expect("store");
    let hash = mfa_proxy::cli::hash_password(PASSWORD.as_bytes()).expect("hash");
    for i in 0..n {
        let name = user_name(i);
        let user = User {
            password_hash: Some(hash.clone()),
            ..User::new(name.clone(), Method::Totp)
        };
        store.add_user(&user).expect("user");
        let token = Token {
            active: true,
            ..Token::totp(name, TotpParams::default())
        };
        store.add_token(&token, &seed(i)).expect("token");
    }
}

/// Unique request authenticators across threads.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Sends one Access-Request from `sock` and waits for its answer: the
/// answer's code and State, or `None`. Answers to earlier requests (late
/// ones) are told apart by the identifier and authenticator, and skipped.
fn ask(
    sock: &UdpSocket,
    to: SocketAddr,
    user: &str,
    password: &str,
    state: Option<&[u8]>,
) -> Option<(Code, Option<Vec<u8>>)> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut auth = [0u8; AUTH_LEN];
    auth[..8].copy_from_slice(&n.to_be_bytes());
    auth[8..].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
    let id = n as u8;
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, user.as_bytes()).expect("fits");
    let hidden = crypto::hide_password(password.as_bytes(), SECRET, &auth).expect("hide");
    b.push(attr::USER_PASSWORD, &hidden).expect("fits");
    if let Some(s) = state {
        b.push(attr::STATE, s).expect("fits");
    }
    sock.send_to(&b.finish_request(SECRET), to).expect("send");
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(p) = Packet::parse(&buf[..len]) else {
            continue;
        };
        if p.identifier() != id || !crypto::verify_packet_authenticator(&buf[..len], &auth, SECRET)
        {
            continue;
        }
        let state = p.find(attr::STATE).map(|a| a.value.to_vec());
        return Some((p.code(), state));
    }
}

/// A login thread's part: which node, which users, where to write.
struct Stream {
    node: usize,
    to: SocketAddr,
    users: std::ops::Range<u64>,
    log: Log,
    stop: Arc<AtomicBool>,
}

static LOGINS: AtomicU64 = AtomicU64::new(0);

impl Stream {
    /// Complete logins, one at a time, at most one per [`PACE`], until told
    /// to stop. A user's code is for a step newer than any it sent before
    /// (a code may be used once), within the ±1 window: two logins per
    /// user in the first 30 s step, then one per step.
    fn run(self) {
        let mut last_step: Vec<Option<u64>> = vec![None; self.users.clone().count()];
        let (mut next, mut made) = (0usize, 0u64);
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let step = now() / 30;
            let usable = |last: Option<u64>| last.map_or(step, |l| (l + 1).max(step));
            let pick = (0..last_step.len())
                .map(|k| (next + k) % last_step.len())
                .find(|&k| usable(last_step[k]) <= step + 1);
            let Some(k) = pick else {
                // Every user's codes are used up until the next step.
                std::thread::sleep(PACE);
                continue;
            };
            next = k + 1;
            let code_step = usable(last_step[k]);
            // Whatever the answer, the code may have been claimed.
            last_step[k] = Some(code_step);
            // This thread's every WRONG_EVERY-th login tries a wrong code first.
            self.login(
                self.users.start + k as u64,
                code_step,
                made % WRONG_EVERY == 0,
            );
            made += 1;
            if let Some(rest) = PACE.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// One login of `user`: the password, a wrong code if `wrong_first`,
    /// then the code of `step`, each answering the challenge before it.
    fn login(&self, user: u64, step: u64, wrong_first: bool) {
        let login = LOGINS.fetch_add(1, Ordering::Relaxed);
        let name = user_name(user);
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut state = None;
        let mut rounds = vec![(Round::Password, PASSWORD.to_owned())];
        if wrong_first {
            rounds.push((Round::WrongCode, wrong_code(user, step).to_owned()));
        }
        rounds.push((Round::Code, code_at_step(user, step)));
        for (round, password) in rounds {
            let sent = Instant::now();
            let got = ask(&sock, self.to, &name, &password, state.as_deref());
            self.log.lock().expect("log").push(Exchange {
                node: self.node,
                login,
                user,
                round,
                sent,
                answer: got.as_ref().map(|(c, _)| (Instant::now(), *c)),
            });
            match got {
                Some((Code::ACCESS_CHALLENGE, Some(s))) => state = Some(s),
                _ => return,
            }
        }
    }
}

/// A code that is not the user's for any step near `step`.
fn wrong_code(user: u64, step: u64) -> &'static str {
    let near: Vec<String> = (step - 2..=step + 2)
        .map(|s| code_at_step(user, s))
        .collect();
    ["000000", "111111", "222222", "333333", "444444", "555555"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .expect("six candidates, five codes")
}

/// Logins accepted at `node` whose password was sent at `since` or later.
fn accepted_since(log: &[Exchange], node: usize, since: Instant) -> usize {
    log.iter()
        .filter(|e| e.node == node && e.round == Round::Code && e.accepted())
        .filter(|e| {
            log.iter()
                .any(|p| p.login == e.login && p.round == Round::Password && p.sent >= since)
        })
        .count()
}

/// A login as a whole.
#[derive(Debug)]
struct Whole {
    node: usize,
    /// When its password was sent.
    began: Instant,
    /// When its last answer came, or its last request was given up.
    ended: Instant,
    /// Its last answer was an Accept.
    accepted: bool,
}

fn wholes(log: &[Exchange]) -> Vec<Whole> {
    let mut by_login = std::collections::BTreeMap::<u64, Whole>::new();
    for e in log {
        let ended = e.answer.map_or(e.sent + ANSWER_WAIT, |(at, _)| at);
        by_login
            .entry(e.login)
            .and_modify(|w| {
                w.ended = w.ended.max(ended);
                w.accepted = e.accepted();
            })
            .or_insert(Whole {
                node: e.node,
                began: e.sent,
                ended,
                accepted: e.accepted(),
            });
    }
    by_login.into_values().collect()
}

/// Waits until each node has [`ACCEPTS`] logins accepted whose password was
/// sent at `since` or later, at most `bound`.
fn wait_for_accepts(log: &Log, since: Instant, bound: Duration, what: &str) {
    let deadline = Instant::now() + bound;
    loop {
        let counts: Vec<usize> = {
            let log = log.lock().expect("log");
            (0..2).map(|n| accepted_since(&log, n, since)).collect()
        };
        if counts.iter().all(|&c| c >= ACCEPTS) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: accepted logins at A and B after {bound:?}: {counts:?}\n{}",
            summary(&log.lock().expect("log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Answers per node, round and code, for failure messages.
fn summary(log: &[Exchange]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for e in log {
        let answer = e.answer.map_or("none", |(_, c)| c.name());
        *counts
            .entry((["A", "B"][e.node], format!("{:?}", e.round), answer))
            .or_insert(0) += 1;
    }
    format!("{counts:?}")
}

#[test]
fn both_nodes_recover_from_a_postgresql_restart_under_load_without_a_restart() {
    let Some(server) = pg_server::PgServer::start_or_skip() else {
        return;
    };
    let test_started = Instant::now();
    let cluster = Cluster::on(server.new_database());
    let users = 2 * THREADS_PER_NODE as u64 * USERS_PER_THREAD;
    // One more user per node, for a challenge held across the outage.
    enroll(
        &cluster.url,
        &cluster.a_dir.path().join("data/seed.key"),
        users + 2,
    );
    let mut nodes: [Killed; 2] = [
        serve(cluster.a_dir.path(), cluster.a_http),
        serve(cluster.b_dir.path(), cluster.b_http),
    ];

    let log: Log = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2 * THREADS_PER_NODE)
        .map(|t| {
            let node = t % 2;
            let first = t as u64 * USERS_PER_THREAD;
            let stream = Stream {
                node,
                to: [cluster.a, cluster.b][node],
                users: first..first + USERS_PER_THREAD,
                log: log.clone(),
                stop: stop.clone(),
            };
            std::thread::spawn(move || stream.run())
        })
        .collect();

    // Logins go through at both nodes; then PostgreSQL goes away.
    wait_for_accepts(&log, test_started, BEFORE_BOUND, "before the outage");
    // A challenge from each node, to be answered while the database is
    // down: a code whose use cannot be recorded must not get in.
    let held: Vec<(UdpSocket, Vec<u8>)> = [cluster.a, cluster.b]
        .iter()
        .enumerate()
        .map(|(n, &to)| {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let got = ask(&sock, to, &user_name(users + n as u64), PASSWORD, None);
            match got {
                Some((Code::ACCESS_CHALLENGE, Some(state))) => (sock, state),
                other => panic!("node {n}: no challenge: {other:?}"),
            }
        })
        .collect();
    let stopping = Instant::now();
    server.stop();
    let stopped = Instant::now();
    let mut held_answers = Vec::new();
    for (n, (sock, state)) in held.iter().enumerate() {
        let (to, user) = ([cluster.a, cluster.b][n], users + n as u64);
        let code = code_at_step(user, now() / 30);
        let got = ask(sock, to, &user_name(user), &code, Some(state));
        assert!(
            got.as_ref().is_none_or(|(c, _)| *c == Code::ACCESS_REJECT),
            "node {n} answered the held challenge with {got:?} while PostgreSQL was down"
        );
        held_answers.push(got.map_or("none", |(c, _)| c.name()));
    }
    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    let restarting = Instant::now();
    server.start_again();
    let restarted = Instant::now();
    // Both nodes, never restarted, accept complete logins again.
    wait_for_accepts(&log, restarted, RECOVERY_BOUND, "after the restart");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a login thread");
    }
    let log = std::mem::take(&mut *log.lock().expect("log"));
    let summary = summary(&log);
    for (n, node) in nodes.iter_mut().enumerate() {
        assert!(
            node.0.try_wait().expect("wait").is_none(),
            "node {n} exited"
        );
    }

    // Only the code answering a challenge is ever accepted: never a wrong
    // code, never a password alone.
    let wrongly: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.accepted() && e.round != Round::Code)
        .collect();
    assert!(wrongly.is_empty(), "accepted: {wrongly:?}\n{summary}");
    // With PostgreSQL up, every login goes through: all those over before
    // it was stopped, and at each node all those begun once the node had
    // accepted a login again after the restart.
    let wholes = wholes(&log);
    let failed: Vec<&Whole> = wholes
        .iter()
        .filter(|w| w.ended < stopping && !w.accepted)
        .collect();
    assert!(
        failed.is_empty(),
        "refused before the outage: {failed:?}\n{summary}"
    );
    for node in 0..2 {
        let back = wholes
            .iter()
            .filter(|w| w.node == node && w.began >= restarted && w.accepted)
            .map(|w| w.ended)
            .min()
            .expect("accepted after the restart");
        let failed: Vec<&Whole> = wholes
            .iter()
            .filter(|w| w.node == node && w.began >= back && !w.accepted)
            .collect();
        assert!(
            failed.is_empty(),
            "node {node} accepted a login {:?} after the restart, then refused: {failed:?}\n{summary}",
            back - restarted
        );
    }
    // Nothing sent while PostgreSQL was down was accepted before it was back.
    for node in 0..2 {
        let during: Vec<&Exchange> = log
            .iter()
            .filter(|e| e.node == node && e.sent >= stopped)
            .filter(|e| e.answer.is_none_or(|(at, _)| at <= restarting))
            .collect();
        assert!(
            !during.is_empty(),
            "no login reached node {node} during the outage\n{summary}"
        );
        let accepted: Vec<&&Exchange> = during.iter().filter(|e| e.accepted()).collect();
        assert!(
            accepted.is_empty(),
            "accepted during the outage: {accepted:?}\n{summary}"
        );
    }

    // Every Accept the NAS received has its audit record, user by user.
    let key = SeedKey::load(&cluster.a_dir.path().join("data/seed.key")).expect("key");
    let store = PgStore::connect(&cluster.url, key, 1).expect("store");
    let mut unrecorded = std::collections::BTreeMap::new();
    for e in log.iter().filter(|e| e.accepted()) {
        *unrecorded.entry(user_name(e.user)).or_insert(0i64) += 1;
    }
    let received: i64 = unrecorded.values().sum();
    for a in store.audit(None, None).expect("audit") {
        if a.accepted {
            *unrecorded.entry(a.user).or_insert(0) -= 1;
        }
    }
    unrecorded.retain(|_, n| *n > 0);
    assert!(
        unrecorded.is_empty(),
        "Accepts received without their audit record: {unrecorded:?}\n{summary}"
    );

    // Each node counted the logins it could not serve, and said why in its
    // log, without the database's password.
    let password = cluster
        .url
        .split_once("mfa:")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(pw, _)| pw.to_owned())
        .expect("the password in the URL");
    for (dir, http) in [
        (cluster.a_dir.path(), cluster.a_http),
        (cluster.b_dir.path(), cluster.b_http),
    ] {
        let m = metrics(http);
        let failures = metric(&m, "mfa_proxy_events_total{event=\"mfa_store_failures\"}");
        assert!(failures > 0, "no store failures counted:\n{m}");
        // The end of the outage is said once no failure came for a moment,
        // with the next commit that works (a heartbeat at the latest).
        let deadline = Instant::now() + Duration::from_secs(20);
        let serve_log = loop {
            let log = std::fs::read_to_string(dir.join("serve.log")).expect("log");
            if log.contains("the store works again") || Instant::now() > deadline {
                break log;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            serve_log.contains("failing closed"),
            "the outage is not in the log:\n{serve_log}"
        );
        assert!(
            serve_log.contains("the store works again"),
            "the recovery is not in the log:\n{serve_log}"
        );
        // The failures are logged a few at a time, not one line per login.
        let lines = (serve_log.lines())
            .filter(|l| l.contains("Z ERROR "))
            .count();
        assert!(lines < 20, "{lines} error lines:\n{serve_log}");
        assert!(!serve_log.contains(&password), "the password is logged");
    }
    eprintln!(
        "{} logins, {received} accepted, in {:.1}s; held challenges answered in the outage: {held_answers:?}; {summary}",
        LOGINS.load(Ordering::Relaxed),
        test_started.elapsed().as_secs_f64()
    );
}
