//! Free ports for servers a test starts. A port the kernel hands out for
//! `bind(0)` lies in the ephemeral range, where any outgoing connection on
//! the machine may take it as its local port before the server binds it
//! (seen in CI: an HTTP listener failing with "Address already in use"
//! after a test that opened many connections). So ports are picked at
//! random below that range and kept only when TCP and UDP can both bind
//! them at that moment, and never twice in one test process (tests run
//! in parallel threads: one may hold a port it picked and has not bound
//! yet when another picks).
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The ports this process handed out.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Below Linux's default ephemeral range (32768..=60999) and above the
/// ports daemons usually own.
const LOW: u16 = 20_000;
const HIGH: u16 = 32_000;

/// A port on 127.0.0.1 free for both TCP and UDP right now, outside the
/// ephemeral range.
pub fn pick() -> std::io::Result<u16> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    for _ in 0..200 {
        let n = seed.wrapping_add(NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        let port = LOW + (n % u64::from(HIGH - LOW)) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no port free for both TCP and UDP in 20000..32000 after 200 tries",
    ))
}
