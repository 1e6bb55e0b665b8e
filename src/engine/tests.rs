//! Deterministic simulation: a NAS, the engine and fake upstreams on a
//! virtual clock.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::radius::crypto;

const NAS_SECRET: &[u8] = b"nas-secret-0123456789";
const UP_SECRET: &[u8] = b"upstream-secret-0123456789";

fn nas_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

fn up_addr(i: usize) -> SocketAddr {
    format!("127.0.0.{}:1812", 10 + i).parse().expect("addr")
}

fn up_acct_addr(i: usize) -> SocketAddr {
    format!("127.0.0.{}:1813", 10 + i).parse().expect("addr")
}

fn config(upstreams: usize, extra_proxy: &str, client_extra: &str, upstream_extra: &str) -> Config {
    let mut t = format!(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\nacct_listen = [\"127.0.0.1:1813\"]\n[mfa]\nenabled = false\n[proxy]\n{extra_proxy}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{}\"\n{client_extra}\n",
        String::from_utf8_lossy(NAS_SECRET)
    );
    for i in 0..upstreams {
        t.push_str(&format!(
            "[[upstream]]\nname = \"up{i}\"\naddress = \"{}\"\nacct_address = \"{}\"\nsecret = \"{}\"\ntimeout = \"1s\"\nretries = 2\n{upstream_extra}\n",
            up_addr(i),
            up_acct_addr(i),
            String::from_utf8_lossy(UP_SECRET)
        ));
    }
    Config::from_toml(&t, Path::new("sim.toml")).expect("valid sim config")
}

struct Sim {
    e: Engine,
    now: Instant,
}

impl Sim {
    fn new(c: &Config) -> Sim {
        let now = Instant::now();
        Sim {
            e: Engine::new(c, Arc::new(Dictionary::builtin()), [7; 32], now),
            now,
        }
    }

    fn default() -> Sim {
        Sim::new(&config(2, "", "", "health_check = \"none\""))
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.e.handle_timeout(self.now);
    }

    fn nas(&mut self, pkt: &[u8]) {
        self.e.handle_nas(self.now, 0, nas_addr(), pkt);
    }

    fn out(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.e.poll_transmit()).collect()
    }

    fn count(&self, c: Counter) -> u64 {
        self.e.stats().get(c)
    }
}

/// An Access-Request as a NAS builds it.
fn access_request(
    id: u8,
    auth: [u8; 16],
    user: &str,
    password: &[u8],
    ma: bool,
    extra: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    if ma {
        b.push_message_authenticator().expect("fits");
    }
    b.push(attr::USER_NAME, user.as_bytes()).expect("fits");
    if !password.is_empty() {
        b.push(
            attr::USER_PASSWORD,
            &crypto::hide_password(password, NAS_SECRET, &auth).expect("hide"),
        )
        .expect("fits");
    }
    for (t, v) in extra {
        b.push(*t, v).expect("fits");
    }
    b.finish_request(NAS_SECRET)
}

fn pap(id: u8) -> Vec<u8> {
    access_request(
        id,
        [id; 16],
        "alice",
        b"correct horse",
        true,
        &[(attr::PROXY_STATE, b"nas-ps")],
    )
}

/// A fake upstream: checks the request the engine sent and answers `code`
/// with `attrs`, echoing every Proxy-State.
fn answer(t: &Transmit, code: Code, attrs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let p = Packet::parse(&t.payload).expect("engine sends valid packets");
    let off = p
        .message_authenticator_offset()
        .expect("engine always signs");
    let ma_auth = if p.code() == Code::ACCOUNTING_REQUEST {
        [0; 16]
    } else {
        *p.authenticator()
    };
    assert!(crypto::verify_message_authenticator(
        &t.payload, off, &ma_auth, UP_SECRET
    ));
    assert_eq!(
        p.attributes().next().map(|a| a.typ),
        Some(attr::MESSAGE_AUTHENTICATOR)
    );
    let mut b = PacketBuilder::new(code, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    for (typ, v) in attrs {
        b.push(*typ, v).expect("fits");
    }
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    if code == Code::ACCOUNTING_RESPONSE && p.code() == Code::ACCOUNTING_REQUEST {
        b.finish_accounting_response(UP_SECRET, p.authenticator())
    } else {
        b.finish_response(UP_SECRET, p.authenticator())
    }
}

fn upstream_index(t: &Transmit) -> usize {
    (0..4)
        .find(|&i| t.to == up_addr(i) || t.to == up_acct_addr(i))
        .expect("sent to an upstream")
}

fn deliver(s: &mut Sim, t: &Transmit, reply: &[u8]) {
    let SocketRef::Upstream(sock) = t.socket else {
        panic!("not an upstream socket")
    };
    let from = t.to;
    s.e.handle_upstream(s.now, sock, from, reply);
}

#[test]
fn pap_round_trip_rewrites_everything_it_must() {
    let mut s = Sim::default();
    let req = pap(42);
    s.nas(&req);
    let out = s.out();
    assert_eq!(out.len(), 1);
    let fwd = &out[0];
    assert_eq!(fwd.to, up_addr(0), "failover picks the first upstream");
    let p = Packet::parse(&fwd.payload).expect("valid");
    assert_ne!(p.authenticator(), &[42; 16], "fresh Request Authenticator");
    // The password is re-hidden for the upstream.
    let pw = p.find(attr::USER_PASSWORD).expect("password").value;
    assert_eq!(
        &crypto::unhide_password(pw, UP_SECRET, p.authenticator()).expect("unhide")[..],
        b"correct horse"
    );
    // The NAS's Proxy-State is kept, ours appended last.
    let ps: Vec<&[u8]> = p
        .attributes()
        .filter(|a| a.typ == attr::PROXY_STATE)
        .map(|a| a.value)
        .collect();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0], b"nas-ps");
    assert_eq!(
        p.attributes().last().map(|a| a.typ),
        Some(attr::PROXY_STATE)
    );

    // The upstream accepts with a Tunnel-Password and MPPE keys.
    let mut tp = vec![1];
    tp.extend(
        crypto::salt_encrypt(b"vlan-pass", UP_SECRET, p.authenticator(), [0x85, 1]).expect("enc"),
    );
    let mut vsa = 311u32.to_be_bytes().to_vec();
    let key =
        crypto::salt_encrypt(&[0x42; 32], UP_SECRET, p.authenticator(), [0x81, 9]).expect("enc");
    vsa.extend([attr::MS_MPPE_RECV_KEY, (key.len() + 2) as u8]);
    vsa.extend(&key);
    let reply = answer(
        fwd,
        Code::ACCESS_ACCEPT,
        &[
            (attr::TUNNEL_PASSWORD, tp),
            (attr::VENDOR_SPECIFIC, vsa),
            (attr::REPLY_MESSAGE, b"hi".to_vec()),
        ],
    );
    deliver(&mut s, fwd, &reply);
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].socket, out[0].to),
        (SocketRef::Listener(0), nas_addr())
    );
    let r = &out[0].payload;
    let q = Packet::parse(r).expect("valid");
    assert_eq!(q.code(), Code::ACCESS_ACCEPT);
    assert_eq!(q.identifier(), 42);
    assert!(crypto::verify_packet_authenticator(
        r, &[42; 16], NAS_SECRET
    ));
    assert_eq!(
        q.attributes().next().map(|a| a.typ),
        Some(attr::MESSAGE_AUTHENTICATOR),
        "MA first"
    );
    let off = q.message_authenticator_offset().expect("MA");
    assert!(crypto::verify_message_authenticator(
        r, off, &[42; 16], NAS_SECRET
    ));
    let ps: Vec<&[u8]> = q
        .attributes()
        .filter(|a| a.typ == attr::PROXY_STATE)
        .map(|a| a.value)
        .collect();
    assert_eq!(
        ps,
        vec![&b"nas-ps"[..]],
        "our Proxy-State stripped, the NAS's kept"
    );
    let tp = q.find(attr::TUNNEL_PASSWORD).expect("tp").value;
    assert_eq!(
        &crypto::salt_decrypt(&tp[1..], NAS_SECRET, &[42; 16]).expect("dec")[..],
        b"vlan-pass"
    );
    let (_, mut subs) = q
        .find(attr::VENDOR_SPECIFIC)
        .and_then(|a| a.vsa())
        .expect("vsa");
    let k = subs.next().expect("key");
    assert_eq!(
        &crypto::salt_decrypt(k.value, NAS_SECRET, &[42; 16]).expect("dec")[..],
        &[0x42; 32]
    );
    assert_eq!(
        q.find(attr::REPLY_MESSAGE).map(|a| a.value),
        Some(&b"hi"[..])
    );
    assert_eq!(s.count(Counter::RepliesAccept), 1);
    assert_eq!(s.e.pending_len(), 0);
}

#[test]
fn message_authenticator_rules() {
    let mut s = Sim::default();
    // Missing while required.
    s.nas(&access_request(1, [1; 16], "a", b"p", false, &[]));
    assert_eq!(s.count(Counter::DropMissingMessageAuthenticator), 1);
    // Wrong.
    let mut bad = pap(2);
    bad[22] ^= 1;
    s.nas(&bad);
    assert_eq!(s.count(Counter::DropBadMessageAuthenticator), 1);
    // Signed with another secret.
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 3, &[3; 16]);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_NAME, b"a").expect("fits");
    s.nas(&b.finish_request(b"wrong-secret"));
    assert_eq!(s.count(Counter::DropBadMessageAuthenticator), 2);
    assert!(s.out().is_empty());

    // Not required: unsigned requests pass, unless they carry Proxy-State or EAP.
    let mut s = Sim::new(&config(
        1,
        "",
        "require_message_authenticator = false",
        "health_check = \"none\"",
    ));
    s.nas(&access_request(1, [1; 16], "a", b"p", false, &[]));
    assert_eq!(s.out().len(), 1);
    s.nas(&access_request(
        2,
        [2; 16],
        "a",
        b"p",
        false,
        &[(attr::PROXY_STATE, b"x")],
    ));
    assert_eq!(s.count(Counter::DropBlastRadiusProxyState), 1);
    s.nas(&access_request(
        3,
        [3; 16],
        "a",
        b"",
        false,
        &[(attr::EAP_MESSAGE, &[2, 1, 0, 5, 1])],
    ));
    assert_eq!(s.count(Counter::DropMissingMessageAuthenticator), 1);
    assert!(s.out().is_empty());
}

#[test]
fn unknown_client_and_malformed_packets_are_dropped_and_counted() {
    let mut s = Sim::default();
    s.e.handle_nas(s.now, 0, "192.0.2.1:1000".parse().expect("addr"), &pap(1));
    assert_eq!(s.count(Counter::DropUnknownClient), 1);
    let good = pap(1);
    let mut cases: Vec<Vec<u8>> = vec![good[..19].to_vec(), vec![]];
    let mut b = good.clone();
    b[3] = 10;
    cases.push(b);
    let mut b = good.clone();
    b[2] = 0x20;
    cases.push(b);
    let mut b = good.clone();
    b[21] = 1;
    cases.push(b);
    let mut b = good.clone();
    b[21] = 200;
    cases.push(b);
    for c in &cases {
        s.nas(c);
    }
    assert_eq!(s.count(Counter::DropMalformed), cases.len() as u64);
    s.nas(&vec![0u8; 5000]);
    assert_eq!(s.count(Counter::DropOversized), 1);
    // Right packet, wrong port.
    s.e.handle_nas(s.now, 1, nas_addr(), &pap(9));
    assert_eq!(s.count(Counter::DropUnexpectedCode), 1);
    // User-Password of a length hiding cannot produce.
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 5, &[5; 16]);
    b.push_message_authenticator().expect("fits");
    b.push(attr::USER_PASSWORD, &[1; 17]).expect("fits");
    s.nas(&b.finish_request(NAS_SECRET));
    assert_eq!(s.count(Counter::DropBadUserPassword), 1);
    assert!(s.out().is_empty());
}

#[test]
fn status_server_is_answered_locally() {
    let mut s = Sim::default();
    let mut b = PacketBuilder::new(Code::STATUS_SERVER, 9, &[9; 16]);
    b.push_message_authenticator().expect("fits");
    s.nas(&b.finish_request(NAS_SECRET));
    let out = s.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, nas_addr());
    let r = &out[0].payload;
    let q = Packet::parse(r).expect("valid");
    assert_eq!(q.code(), Code::ACCESS_ACCEPT);
    assert!(crypto::verify_packet_authenticator(r, &[9; 16], NAS_SECRET));
    let off = q.message_authenticator_offset().expect("MA");
    assert!(crypto::verify_message_authenticator(
        r, off, &[9; 16], NAS_SECRET
    ));
    // Accounting port answers with Accounting-Response.
    let mut b = PacketBuilder::new(Code::STATUS_SERVER, 10, &[10; 16]);
    b.push_message_authenticator().expect("fits");
    s.e.handle_nas(s.now, 1, nas_addr(), &b.finish_request(NAS_SECRET));
    assert_eq!(
        Packet::parse(&s.out()[0].payload).map(|p| p.code()).ok(),
        Some(Code::ACCOUNTING_RESPONSE)
    );
    // Without a Message-Authenticator it is dropped, even if not required.
    let mut s = Sim::new(&config(
        1,
        "",
        "require_message_authenticator = false",
        "health_check = \"none\"",
    ));
    s.nas(&PacketBuilder::new(Code::STATUS_SERVER, 11, &[11; 16]).finish_request(NAS_SECRET));
    assert!(s.out().is_empty());
    assert_eq!(s.count(Counter::DropMissingMessageAuthenticator), 1);
}

#[test]
fn retransmissions_never_reach_the_upstream_twice() {
    let mut s = Sim::default();
    let req = pap(7);
    s.nas(&req);
    let fwd = s.out().remove(0);
    for _ in 0..3 {
        s.nas(&req);
    }
    assert!(s.out().is_empty(), "in-flight duplicates are dropped");
    assert_eq!(s.count(Counter::DropDuplicateInFlight), 3);
    deliver(
        &mut s,
        &fwd.clone(),
        &answer(&fwd, Code::ACCESS_REJECT, &[]),
    );
    let first = s.out().remove(0).payload;
    s.advance(Duration::from_secs(29));
    s.nas(&req);
    let again = s.out();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, first, "the cached answer, byte for byte");
    assert_eq!(s.count(Counter::UpstreamRequests), 1);
    // After the window it is a new request.
    s.advance(Duration::from_secs(2));
    s.nas(&req);
    assert_eq!(s.out()[0].to, up_addr(0));
    assert_eq!(s.count(Counter::UpstreamRequests), 2);
    // Same identifier, new authenticator: a new request.
    s.nas(&access_request(7, [99; 16], "alice", b"pw", true, &[]));
    assert_eq!(s.out().len(), 1);
}

#[test]
fn upstream_retransmits_then_fails_over() {
    let mut s = Sim::default();
    s.nas(&pap(1));
    let first = s.out().remove(0);
    for _ in 0..2 {
        s.advance(Duration::from_secs(1));
        let re = s.out();
        assert_eq!(re.len(), 1);
        assert_eq!(
            (re[0].to, &re[0].payload),
            (first.to, &first.payload),
            "a retransmission is the same packet"
        );
    }
    s.advance(Duration::from_secs(1));
    let over = s.out();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].to, up_addr(1), "failed over to the second upstream");
    assert_eq!(s.count(Counter::UpstreamRetransmits), 2);
    assert_eq!(s.count(Counter::UpstreamFailovers), 1);
    // A late answer from the first upstream matches nothing.
    deliver(&mut s, &first, &answer(&first, Code::ACCESS_ACCEPT, &[]));
    assert_eq!(s.count(Counter::UpstreamDropUnmatched), 1);
    deliver(
        &mut s,
        &over[0],
        &answer(&over[0], Code::ACCESS_ACCEPT, &[]),
    );
    let r = s.out();
    assert_eq!(r.len(), 1);
    assert!(crypto::verify_packet_authenticator(
        &r[0].payload,
        &[1; 16],
        NAS_SECRET
    ));
}

#[test]
fn when_every_upstream_is_down() {
    // Drop: silence, and the NAS's retransmission is tried again.
    let mut s = Sim::new(&config(1, "", "", "health_check = \"none\""));
    s.nas(&pap(1));
    for _ in 0..3 {
        s.advance(Duration::from_secs(1));
    }
    s.out();
    assert_eq!(s.count(Counter::DropNoUpstream), 1);
    s.nas(&pap(1));
    assert_eq!(s.out().len(), 1, "retried, not treated as a duplicate");

    // Reject: the NAS gets a signed Access-Reject echoing its Proxy-State.
    let mut s = Sim::new(&config(
        1,
        "when_all_down = \"reject\"",
        "",
        "health_check = \"none\"",
    ));
    s.nas(&pap(2));
    for _ in 0..3 {
        s.advance(Duration::from_secs(1));
    }
    let out: Vec<_> = s.out().into_iter().filter(|t| t.to == nas_addr()).collect();
    assert_eq!(out.len(), 1);
    let q = Packet::parse(&out[0].payload).expect("valid");
    assert_eq!(q.code(), Code::ACCESS_REJECT);
    assert!(crypto::verify_packet_authenticator(
        &out[0].payload,
        &[2; 16],
        NAS_SECRET
    ));
    assert_eq!(
        q.find(attr::PROXY_STATE).map(|a| a.value),
        Some(&b"nas-ps"[..])
    );
}

/// Steps the clock a second at a time, answering at once everything sent to
/// `up1`; returns what was sent to `up0`.
fn run_with_up1_answering(s: &mut Sim, seconds: u32) -> Vec<Transmit> {
    let mut to_up0 = Vec::new();
    for _ in 0..=seconds {
        for t in s.out() {
            if t.to == up_addr(1) {
                deliver(s, &t, &answer(&t, Code::ACCESS_ACCEPT, &[]));
            } else if t.to == up_addr(0) {
                to_up0.push(t);
            }
        }
        s.advance(Duration::from_secs(1));
    }
    to_up0
}

#[test]
fn dead_upstream_is_skipped() {
    let mut s = Sim::new(&config(
        2,
        "dead_after = 2\nrevive_after = \"1h\"",
        "",
        "health_check = \"none\"",
    ));
    for id in 1..=2 {
        s.nas(&pap(id));
        let to_up0 = run_with_up1_answering(&mut s, 4);
        assert_eq!(to_up0.len(), 3, "one try and two retransmissions");
    }
    assert!(!s.e.stats().upstreams[0].alive, "up0 is dead");
    assert_eq!(
        s.count(Counter::RepliesAccept),
        2,
        "both logins answered by up1"
    );
    s.nas(&pap(3));
    assert!(
        run_with_up1_answering(&mut s, 4).is_empty(),
        "a dead upstream is skipped"
    );
    assert_eq!(s.count(Counter::RepliesAccept), 3);
}

#[test]
fn status_server_probes_kill_and_revive() {
    let mut s = Sim::new(&config(
        1,
        "dead_after = 2\nalive_after = 2\ncheck_interval = \"5s\"",
        "",
        "",
    ));
    fn probe(s: &mut Sim) -> Transmit {
        s.advance(Duration::from_secs(5));
        let out = s.out();
        assert_eq!(out.len(), 1, "one probe per interval");
        let p = Packet::parse(&out[0].payload).expect("valid");
        assert_eq!(p.code(), Code::STATUS_SERVER);
        let off = p.message_authenticator_offset().expect("probes are signed");
        assert!(crypto::verify_message_authenticator(
            &out[0].payload,
            off,
            p.authenticator(),
            UP_SECRET
        ));
        out.into_iter().next().expect("probe")
    }
    let _unanswered = probe(&mut s);
    let _unanswered = probe(&mut s);
    let third = probe(&mut s);
    assert!(!s.e.stats().upstreams[0].alive, "two probe timeouts: dead");
    deliver(&mut s, &third, &answer(&third, Code::ACCESS_ACCEPT, &[]));
    assert!(!s.e.stats().upstreams[0].alive, "one answer is not enough");
    let fourth = probe(&mut s);
    deliver(&mut s, &fourth, &answer(&fourth, Code::ACCESS_ACCEPT, &[]));
    assert!(s.e.stats().upstreams[0].alive, "two answers: alive");
    assert_eq!(s.count(Counter::UpstreamProbes), 4);
}

#[test]
fn revive_after_without_probes() {
    let mut s = Sim::new(&config(
        2,
        "dead_after = 1\nrevive_after = \"30s\"",
        "",
        "health_check = \"none\"",
    ));
    s.nas(&pap(1));
    for _ in 0..3 {
        s.advance(Duration::from_secs(1));
    }
    assert!(!s.e.stats().upstreams[0].alive);
    assert_eq!(s.e.poll_timeout().map(|t| t > s.now), Some(true));
    s.advance(Duration::from_secs(30));
    assert!(s.e.stats().upstreams[0].alive);
}

#[test]
fn forged_and_broken_upstream_replies_are_dropped() {
    let mut s = Sim::default();
    s.nas(&pap(1));
    let fwd = s.out().remove(0);
    let good = answer(&fwd, Code::ACCESS_ACCEPT, &[]);
    // Wrong source address.
    s.e.handle_upstream(s.now, 0, "127.0.0.99:1812".parse().expect("addr"), &good);
    assert_eq!(s.count(Counter::UpstreamDropUnknownSource), 1);
    // Bad Response Authenticator.
    let mut bad = good.clone();
    bad[5] ^= 1;
    deliver(&mut s, &fwd, &bad);
    assert_eq!(s.count(Counter::UpstreamDropBadAuthenticator), 1);
    // Unsigned, when signatures are required.
    let p = Packet::parse(&fwd.payload).expect("valid");
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    for ps in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        b.push_raw(ps.raw(&p)).expect("fits");
    }
    deliver(
        &mut s,
        &fwd,
        &b.finish_response(UP_SECRET, p.authenticator()),
    );
    assert_eq!(s.count(Counter::UpstreamDropMissingMessageAuthenticator), 1);
    // Without our Proxy-State.
    let mut b = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
    b.push_message_authenticator().expect("fits");
    deliver(
        &mut s,
        &fwd,
        &b.finish_response(UP_SECRET, p.authenticator()),
    );
    assert_eq!(s.count(Counter::UpstreamDropProxyStateMismatch), 1);
    // Wrong code for the request.
    deliver(&mut s, &fwd, &answer(&fwd, Code::ACCOUNTING_RESPONSE, &[]));
    assert_eq!(s.count(Counter::UpstreamDropUnexpectedCode), 1);
    assert!(s.out().is_empty());
    // The genuine answer still gets through.
    deliver(&mut s, &fwd, &good);
    assert_eq!(s.out().len(), 1);
}

#[test]
fn accounting_is_relayed_and_verified() {
    let mut s = Sim::default();
    let mut b = PacketBuilder::new(Code::ACCOUNTING_REQUEST, 3, &[0; 16]);
    b.push(attr::USER_NAME, b"alice").expect("fits");
    b.push(40, &1u32.to_be_bytes()).expect("fits");
    let req = b.finish_accounting_request(NAS_SECRET);
    s.e.handle_nas(s.now, 1, nas_addr(), &req);
    let fwd = s.out().remove(0);
    assert_eq!(fwd.to, up_acct_addr(0));
    assert!(crypto::verify_packet_authenticator(
        &fwd.payload,
        &[0; 16],
        UP_SECRET
    ));
    deliver(&mut s, &fwd, &answer(&fwd, Code::ACCOUNTING_RESPONSE, &[]));
    let r = s.out().remove(0);
    assert_eq!(
        Packet::parse(&r.payload).map(|p| p.code()).ok(),
        Some(Code::ACCOUNTING_RESPONSE)
    );
    assert!(crypto::verify_packet_authenticator(
        &r.payload,
        Packet::parse(&req).expect("valid").authenticator(),
        NAS_SECRET
    ));
    // A forged Accounting-Request is dropped.
    let mut bad = req.clone();
    bad[25] ^= 1;
    s.e.handle_nas(s.now, 1, nas_addr(), &bad);
    assert_eq!(s.count(Counter::DropBadRequestAuthenticator), 1);
}

#[test]
fn more_than_256_requests_in_flight_per_upstream() {
    let mut s = Sim::new(&config(
        1,
        "upstream_sockets = 4",
        "",
        "health_check = \"none\"",
    ));
    let mut keys = std::collections::HashSet::new();
    for i in 0..1024u32 {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&i.to_be_bytes());
        s.nas(&access_request((i % 256) as u8, a, "u", b"p", true, &[]));
        let out = s.out();
        assert_eq!(out.len(), 1, "request {i} forwarded");
        let id = out[0].payload[1];
        assert!(
            keys.insert((out[0].socket, id)),
            "socket and identifier unique while in flight"
        );
    }
    s.nas(&access_request(0, [0xff; 16], "u", b"p", true, &[]));
    assert!(s.out().is_empty());
    assert_eq!(s.count(Counter::DropIdsExhausted), 1);
    assert_eq!(s.e.pending_len(), 1024);
}

#[test]
fn round_robin_spreads_load() {
    let mut s = Sim::new(&config(
        3,
        "selection = \"round-robin\"",
        "",
        "health_check = \"none\"",
    ));
    let mut per = [0; 3];
    for i in 0..30u8 {
        s.nas(&pap(i));
        per[upstream_index(&s.out()[0])] += 1;
    }
    assert_eq!(per, [10, 10, 10]);
}

#[test]
fn chap_gets_an_explicit_challenge() {
    let mut s = Sim::default();
    s.nas(&access_request(
        4,
        [4; 16],
        "bob",
        b"",
        true,
        &[(attr::CHAP_PASSWORD, &[1; 17])],
    ));
    let fwd = s.out().remove(0);
    let p = Packet::parse(&fwd.payload).expect("valid");
    assert_eq!(
        p.find(attr::CHAP_CHALLENGE).map(|a| a.value),
        Some(&[4u8; 16][..])
    );
}

#[test]
fn dedup_cache_is_bounded() {
    let mut s = Sim::new(&config(
        1,
        "dedup_max_entries = 16",
        "",
        "health_check = \"none\"",
    ));
    for i in 0..100u8 {
        s.nas(&pap(i));
        let fwd = s.out().remove(0);
        deliver(&mut s, &fwd, &answer(&fwd, Code::ACCESS_REJECT, &[]));
        s.out();
        assert!(s.e.dedup_len() <= 16);
    }
}

proptest! {
    /// Arbitrary bytes from a NAS or an upstream never panic and never make
    /// the engine send anything to an upstream without a valid signature.
    #[test]
    fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), upstream in any::<bool>(), listener in 0u16..3) {
        let mut s = Sim::default();
        if upstream {
            s.e.handle_upstream(s.now, 0, up_addr(0), &data);
        } else {
            s.e.handle_nas(s.now, listener, nas_addr(), &data);
        }
        for t in s.out() {
            if let SocketRef::Upstream(_) = t.socket {
                let p = Packet::parse(&t.payload).expect("valid");
                prop_assert!(p.message_authenticator_offset().is_some());
            }
        }
    }

    /// A valid request with a mutated header or attribute never panics.
    #[test]
    fn mutated_requests_never_panic(pos in 0usize..80, byte in any::<u8>()) {
        let mut s = Sim::default();
        let mut req = pap(1);
        if pos < req.len() {
            req[pos] = byte;
        }
        s.nas(&req);
        s.advance(Duration::from_secs(5));
        let _ = s.out();
    }
}

#[test]
fn a_set_known_dead_is_answered_at_once_but_for_one_trial() {
    let mut s = Sim::new(&config(
        1,
        "when_all_down = \"reject\"\ndead_after = 1\nalive_after = 1\nrevive_after = \"1h\"",
        "",
        "health_check = \"none\"",
    ));
    // The first request finds the upstream silent and kills it.
    s.nas(&pap(1));
    for _ in 0..4 {
        s.advance(Duration::from_secs(1));
    }
    assert!(!s.e.stats().upstreams[0].alive, "dead");
    assert_eq!(s.count(Counter::RejectAllUpstreamsDown), 1);
    s.out();
    // The next request goes to it as a trial; while that is out, every
    // other request is rejected now, without a datagram upstream.
    s.nas(&pap(2));
    let trial = s.out();
    assert_eq!(trial.len(), 1);
    assert_eq!(trial[0].to, up_addr(0), "one trial request");
    for id in 3..=5 {
        s.nas(&pap(id));
        let out = s.out();
        assert_eq!(out.len(), 1, "no retry cycle for a known-dead set");
        assert_eq!(out[0].to, nas_addr());
        assert_eq!(
            Packet::parse(&out[0].payload).expect("valid").code(),
            Code::ACCESS_REJECT
        );
    }
    assert_eq!(s.count(Counter::RejectAllUpstreamsDown), 4);
    // The trial is answered: the upstream is back, long before revive_after.
    deliver(
        &mut s,
        &trial[0],
        &answer(&trial[0], Code::ACCESS_ACCEPT, &[]),
    );
    assert!(s.e.stats().upstreams[0].alive, "revived by its trial");
    s.nas(&pap(6));
    assert!(s.out().iter().any(|t| t.to == up_addr(0)));
}

#[test]
fn with_probes_a_dead_set_gets_no_requests_and_drops_at_once() {
    let mut s = Sim::new(&config(
        1,
        "dead_after = 1\ncheck_interval = \"1h\"",
        "",
        "",
    ));
    // The first probe goes unanswered: dead.
    s.advance(Duration::from_millis(1));
    s.out();
    for _ in 0..4 {
        s.advance(Duration::from_secs(1));
    }
    assert!(!s.e.stats().upstreams[0].alive, "dead");
    s.nas(&pap(1));
    assert!(s.out().is_empty(), "dropped at once: the NAS fails over");
    assert_eq!(s.count(Counter::DropNoUpstream), 1);
}
