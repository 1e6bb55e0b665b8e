//! Per-packet costs on one core, without sockets: parsing, signature checks,
//! and one whole proxied request through the engine (NAS request in,
//! upstream request out, upstream answer in, NAS answer out).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use mfa_proxy::config::Config;
use mfa_proxy::engine::{Engine, SocketRef};
use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::radius::{Code, Packet, PacketBuilder, attr, crypto};

const NAS: &[u8] = b"bench-nas-secret-0123456789";
const UP: &[u8] = b"bench-upstream-secret-0123456789";

fn request(id: u8, seq: u64) -> Vec<u8> {
    let mut auth = [0u8; 16];
    auth[..8].copy_from_slice(&seq.to_be_bytes());
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, id, &auth);
    let _ = b.push_message_authenticator();
    let _ = b.push(attr::USER_NAME, b"bench-user");
    let _ = b.push(
        attr::USER_PASSWORD,
        &crypto::hide_password(b"bench-password", NAS, &auth).expect("hide"),
    );
    let _ = b.push(attr::NAS_IP_ADDRESS, &[127, 0, 0, 1]);
    b.finish_request(NAS)
}

fn codec(c: &mut Criterion) {
    let pkt = request(1, 1);
    c.bench_function("parse access-request", |b| {
        b.iter(|| Packet::parse(black_box(&pkt)).map(|p| p.len()))
    });
    let p = Packet::parse(&pkt).expect("valid");
    let off = p.message_authenticator_offset().expect("MA");
    c.bench_function("verify message-authenticator", |b| {
        b.iter(|| {
            crypto::verify_message_authenticator(black_box(&pkt), off, p.authenticator(), NAS)
        })
    });
}

fn engine(c: &mut Criterion) {
    let toml = format!(
        "[server]\nauth_listen = [\"127.0.0.1:1812\"]\n[mfa]\nenabled = false\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{}\"\n\
         [[upstream]]\nname = \"up\"\naddress = \"127.0.0.2:1812\"\nsecret = \"{}\"\nhealth_check = \"none\"\n",
        String::from_utf8_lossy(NAS),
        String::from_utf8_lossy(UP)
    );
    let config = Config::from_toml(&toml, Path::new("bench.toml")).expect("valid");
    let mut e = Engine::new(
        &config,
        Arc::new(Dictionary::builtin()),
        [1; 32],
        Instant::now(),
    );
    let nas = "127.0.0.1:5000".parse().expect("addr");
    let mut seq = 0u64;
    c.bench_function("engine: one proxied PAP request, both directions", |b| {
        b.iter(|| {
            seq += 1;
            let now = Instant::now();
            e.handle_nas(now, 0, nas, &request(seq as u8, seq));
            let fwd = e.poll_transmit().expect("forwarded");
            let p = Packet::parse(&fwd.payload).expect("valid");
            let mut r = PacketBuilder::new(Code::ACCESS_ACCEPT, p.identifier(), &[0; 16]);
            let _ = r.push_message_authenticator();
            for a in p.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
                let _ = r.push_raw(a.raw(&p));
            }
            let reply = r.finish_response(UP, p.authenticator());
            let SocketRef::Upstream(s) = fwd.socket else {
                unreachable!("upstream socket")
            };
            e.handle_upstream(now, s, fwd.to, &reply);
            black_box(e.poll_transmit().expect("answered"));
        })
    });
}

criterion_group!(benches, codec, engine);
criterion_main!(benches);
