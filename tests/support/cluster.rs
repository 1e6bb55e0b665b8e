//! Two proxies on one PostgreSQL database, as separate `mfa-proxy serve`
//! processes on separate ports: their directories, configurations and
//! processes, and radclient logins against them. Shared by the cluster
//! tests; include it with
//!
//! ```ignore
//! mod common;
//! #[path = "support/pg_server.rs"]
//! mod pg_server;
//! #[path = "support/cluster.rs"]
//! mod cluster;
//! ```
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::pg_server;

/// A child killed when the test ends, even by a panic.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A node: the shipped configuration on free ports, named `name`, on the
/// PostgreSQL database at `url`, with the second factor's reject delay
/// off; returns its RADIUS address and HTTP port.
pub fn node(dir: &Path, name: &str, url: &str) -> (SocketAddr, u16) {
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    shipped_config_in(
        dir,
        &[
            ("name = \"mfa-proxy-1\"", &format!("name = \"{name}\"")),
            ("path = \"data/mfa.db\"", &format!("url = \"{url}\"")),
            ("reject_delay = \"1s\"", "reject_delay = \"0s\""),
            ("denials = 10", "denials = 3"),
            ("push_timeout = \"60s\"", "push_timeout = \"5s\""),
        ],
    )
}

/// `serve` in `dir`, its log in `dir/serve.log`, once its HTTP port
/// answers.
pub fn serve(dir: &Path, http: u16) -> Killed {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
            .args(["serve", "--config"])
            .arg(dir.join("proxy.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the node did not come up:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// One PAP Access-Request through radclient (with `State` when answering a
/// challenge); radclient's output.
pub fn login(to: SocketAddr, password: &str, state: Option<&str>) -> String {
    login_as(to, "alice", password, state, 5)
}

/// As [`login`], for `user`, waiting `timeout` seconds for the answer.
pub fn login_as(
    to: SocketAddr,
    user: &str,
    password: &str,
    state: Option<&str>,
    timeout: u32,
) -> String {
    let mut input = format!(
        "User-Name = {user}\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    );
    if let Some(s) = state {
        input.push_str(&format!("State = {s}\n"));
    }
    let timeout = timeout.to_string();
    text(&radclient(
        to,
        "auth",
        "testing123",
        &input,
        &["-x", "-r", "1", "-t", &timeout],
    ))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// A code other than `code`.
pub fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

/// Two nodes' directories and addresses on one PostgreSQL database,
/// initialised by the first node, the second given a copy of its seed key
/// (as the README says).
pub struct Cluster {
    pub url: String,
    pub a_dir: tempfile::TempDir,
    pub b_dir: tempfile::TempDir,
    pub a: SocketAddr,
    pub a_http: u16,
    pub b: SocketAddr,
    pub b_http: u16,
}

impl Cluster {
    /// Two nodes on a new database of the shared server, for tests that
    /// drive them with radclient; `None` where radclient or PostgreSQL is
    /// missing outside CI (under CI=true that fails the test).
    pub fn new() -> Option<Cluster> {
        if !have("radclient") {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true: radclient is missing"
            );
            return None;
        }
        let url = pg_server::PgServer::shared()?.new_database();
        Some(Cluster::on(url))
    }

    /// Two nodes on the (empty) database at `url`.
    pub fn on(url: String) -> Cluster {
        let (a_dir, b_dir) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let (a, a_http) = node(a_dir.path(), "node-a", &url);
        let (b, b_http) = node(b_dir.path(), "node-b", &url);
        let o = run_bin(a_dir.path(), &["init"], None);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::copy(
            a_dir.path().join("data/seed.key"),
            b_dir.path().join("data/seed.key"),
        )
        .expect("copy the key");
        Cluster {
            url,
            a_dir,
            b_dir,
            a,
            a_http,
            b,
            b_http,
        }
    }
}

/// The node's /metrics text.
pub fn metrics(http: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", http)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// The value of the metric line that starts with `name`, e.g.
/// `mfa_proxy_events_total{event="mfa_store_failures"}`.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}
