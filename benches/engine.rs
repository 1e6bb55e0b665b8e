//! The loop thread's own work, without sockets, threads or database: one
//! plain proxied request, and one complete TOTP login (request, upstream
//! accept, challenge, answer, accept), with the store's answers given as the
//! database thread would give them.
//!
//! Each iteration also builds what the NAS and the upstream would send
//! (stand-ins); `stand-ins only` measures that part alone, to subtract.
//!
//!     cargo bench --bench engine

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mfa_proxy::config::Config;
use mfa_proxy::engine::{Engine, SocketRef, StoreJob, Transmit};
use mfa_proxy::mfa::Method;
use mfa_proxy::mfa::otp::{TotpParams, Verdict};
use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::radius::{Code, Packet, PacketBuilder, attr};
use mfa_proxy::store::login::{StoreAnswer, StoreOp, Tokens, UserFacts};
use mfa_proxy::store::{SealedSeed, Token};

#[allow(dead_code)] // the store helpers are for the other benches
mod common;

const NAS: &[u8] = b"bench-nas-secret-0123456789";
const UP: &[u8] = b"bench-upstream-secret-0123456789";

fn engine(mfa: bool) -> Engine {
    let t = format!(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[mfa]\nenabled = {mfa}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{}\"\n\
         [[upstream]]\nname = \"up\"\naddress = \"127.0.0.2:1812\"\nsecret = \"{}\"\nhealth_check = \"none\"\n",
        String::from_utf8_lossy(NAS),
        String::from_utf8_lossy(UP)
    );
    let config = Config::from_toml(&t, Path::new("bench.toml")).expect("config");
    Engine::new(
        &config,
        Arc::new(Dictionary::builtin()),
        [7; 32],
        Instant::now(),
    )
}

/// The NAS's request number `seq` for bench user `user`.
fn nas_request(seq: u64, user: u64, password: &[u8], state: Option<&[u8]>) -> Vec<u8> {
    common::mfa_request(seq as u8, seq, user, password, state, NAS)
}

/// What the upstream answers to the request in `t`: an Access-Accept.
fn upstream_accept(t: &Transmit) -> Vec<u8> {
    let p = Packet::parse(&t.payload).expect("request");
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    let _ = b.push_message_authenticator();
    let _ = b.push(attr::REPLY_MESSAGE, b"ok");
    for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        let _ = b.push_raw(a.raw(&p));
    }
    b.finish_response(UP, p.authenticator())
}

fn from() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// Hands the engine the NAS's request number `seq` (bench user `seq`) and
/// lets the stand-in upstream accept it; returns what the engine sent the
/// NAS.
fn first_round(e: &mut Engine, seq: u64) -> Option<Transmit> {
    let now = Instant::now();
    e.handle_nas(
        now,
        0,
        from(),
        &nas_request(seq, seq, b"bench-password", None),
    );
    let mut to_nas = None;
    while let Some(t) = e.poll_transmit() {
        match t.socket {
            SocketRef::Upstream(sock) => e.handle_upstream(now, sock, t.to, &upstream_accept(&t)),
            SocketRef::Listener(_) => to_nas = Some(t),
        }
    }
    to_nas
}

/// One active TOTP token with a sealed seed, as the precheck carries it.
fn one_token() -> Tokens {
    let token = Token {
        id: 1,
        active: true,
        ..Token::totp("u1", TotpParams::default())
    };
    Arc::from([(token, SealedSeed(vec![0; 48]))])
}

/// Answers the store jobs as the database thread would for an enrolled
/// user with the right code.
fn store(e: &mut Engine, now: Instant, tokens: &Tokens) {
    // A final answer waits for its audit record: run until nothing is queued.
    loop {
        let jobs = e.poll_store_jobs();
        if jobs.is_empty() {
            return;
        }
        store_once(e, now, tokens, jobs);
    }
}

fn store_once(e: &mut Engine, now: Instant, tokens: &Tokens, jobs: Vec<StoreJob>) {
    for job in jobs {
        let answer = match job.op {
            StoreOp::Facts { .. } => StoreAnswer::Facts(Some(Box::new(UserFacts {
                blocked: false,
                bypass_waiting: false,
                locked: false,
                method: Method::Totp,
                phone: None,
                tokens: tokens.clone(),
                pin: false,
                language: None,
                groups: Vec::new(),
                remembered: Vec::new(),
                busy: false,
                graced: Vec::new(),
                denied: false,
                disabled: None,
            }))),
            StoreOp::Verify { .. } => StoreAnswer::Verify {
                verdict: Verdict::Valid { step: 1 },
                locked: false,
            },
            StoreOp::Audit(_) => StoreAnswer::Done,
            _ => continue,
        };
        e.handle_store(now, job.id, answer);
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    let mut seq = 0u64;

    let mut e = engine(false);
    g.bench_function("plain request", |b| {
        b.iter(|| {
            seq += 1;
            let reply = first_round(&mut e, seq).expect("reply");
            assert_eq!(reply.payload[0], Code::ACCESS_ACCEPT.0);
        })
    });

    let mut e = engine(true);
    let tokens = one_token();
    g.bench_function("TOTP login", |b| {
        b.iter(|| {
            seq += 1;
            assert!(first_round(&mut e, seq).is_none(), "the accept waits");
            let now = Instant::now();
            store(&mut e, now, &tokens);
            let challenge = e.poll_transmit().expect("challenge");
            let p = Packet::parse(&challenge.payload).expect("challenge");
            assert_eq!(p.code(), Code::ACCESS_CHALLENGE);
            let state = p.find(attr::STATE).expect("state").value.to_vec();
            e.handle_nas(
                now,
                0,
                from(),
                &nas_request(seq + 1, seq, b"123456", Some(&state)),
            );
            seq += 1;
            store(&mut e, now, &tokens);
            let accept = e.poll_transmit().expect("accept");
            assert_eq!(accept.payload[0], Code::ACCESS_ACCEPT.0);
        })
    });

    // The stand-ins' share of the login: two NAS requests, one upstream
    // accept (built from a request of the engine's size).
    let mut e = engine(false);
    e.handle_nas(Instant::now(), 0, from(), &nas_request(0, 0, b"x", None));
    let up = e.poll_transmit().expect("upstream request");
    g.bench_function("stand-ins only (login)", |b| {
        b.iter(|| {
            seq += 1;
            let a = nas_request(seq, seq, b"bench-password", None);
            let u = upstream_accept(&up);
            let r = nas_request(seq, seq, b"123456", Some(&[0xab; 20]));
            (a.len() + u.len() + r.len()) as u64
        })
    });
    g.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
