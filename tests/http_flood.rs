//! The HTTP listener under a flood of idle connections (issue 14, defect 1):
//! 2,000 of them against a proxy held to 1,024 file descriptors must not
//! stop `/healthz` from answering, nor a push login from completing (its
//! webhook needs descriptors of its own). Before the connection caps, about
//! 1,100 idle connections made `accept` fail with "Too many open files" and
//! every push fail as "provider unreachable".

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::provider::*;
use common::*;

/// An idle TCP connection to `to` from `from_ip` (another loopback address,
/// as an attacker's would be).
fn idle(from_ip: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from_ip, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(s.into())
}

#[test]
fn idle_connections_cannot_exhaust_descriptors_or_fail_open_a_push() {
    if !(have("radclient") && have("prlimit")) {
        return;
    }
    // This process holds the 2,000 connections: it needs the descriptors.
    let (_, fds) = mfa_proxy::io::raise_fd_limit().expect("raise limit");
    assert!(fds >= 2_200, "the test needs 2,200 descriptors, has {fds}");

    let sim = ProviderSim::start(HashMap::from([(
        "bob",
        Script::After(Duration::from_secs(1), r#"{"result":"approved"}"#),
    )]));
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, http_port) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    let conf = shipped
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{port}\"]"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http_port}"))
        // Were it to fail open, a push that never left would be accepted.
        .replace("fail_mode = \"fail_closed\"", "fail_mode = \"fail_open\"")
        .replace("fallback_oath = true", "fallback_oath = false")
        // Pushes go to the simulator, not to the trial console.
        .replace(
            "type = \"console\"\nmethods = [\"push\", \"call\", \"sms\"]",
            "type = \"console\"\nmethods = [\"sms\"]",
        );
    std::fs::write(
        dir.path().join("proxy.toml"),
        format!("{conf}\n{}", sim.config("[\"push\"]")),
    )
    .expect("write");
    for args in [
        &["init"][..],
        &[
            "user",
            "add",
            "bob",
            "--phone",
            "+4930123456",
            "--password-stdin",
        ],
        &["user", "set", "bob", "--method", "push"],
    ] {
        let o = run_bin(dir.path(), args, Some("bob-pass\n"));
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    // Held to 1,024 descriptors, soft and hard: nothing to raise.
    let mut serve = Command::new("prlimit")
        .arg("--nofile=1024:1024")
        .arg(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let base = format!("http://{http}");
    // A bound for a loaded machine, not a measurement.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(http).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 2,000 idle connections, from 127.0.0.2 and 127.0.0.3.
    let mut flood = Vec::new();
    for i in 0..2_000 {
        let from = if i % 2 == 0 {
            [127, 0, 0, 2]
        } else {
            [127, 0, 0, 3]
        };
        flood.push(idle(from, http).expect("connect"));
    }
    let t = Instant::now();
    let (status, _) = provider::http("GET", &format!("{base}/healthz"), "", None);
    let took = t.elapsed();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");

    // A push login: its webhook and the callback both get through.
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let out = text(&radclient(
        to,
        "auth",
        "testing123",
        "User-Name = bob\nUser-Password = bob-pass\nMessage-Authenticator = 0x00\n",
        &["-x", "-r", "1", "-t", "10"],
    ));
    // The accept loop works through the backlog: wait until every one of
    // the 2,000 was either admitted (64 per address at a time; an idle one
    // is closed after the header timeout) or closed at once.
    let count = |m: &str, outcome: &str| -> u64 {
        let key = format!("mfa_proxy_http_connections_total{{outcome=\"{outcome}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key)?.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, m) = provider::http("GET", &format!("{base}/metrics"), "", None);
        if count(&m, "accepted") + count(&m, "refused_address_cap") >= 2_000
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(flood);
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    let mut log = String::new();
    if let Some(mut e) = serve.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(out.contains("Received Access-Accept"), "{out}\n{log}");
    assert_eq!(sim.to("bob").len(), 1, "one push delivered");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        count(&metrics, "refused_address_cap") >= 1_000 && count(&metrics, "accept_error") == 0,
        "the per-address cap closed the flood, and accept never failed:\n{metrics}"
    );
    let report = run_bin(dir.path(), &["report", "signins", "--format", "csv"], None);
    assert!(
        text(&report).contains("SUCCESS_PHONE_APP_AUTHENTICATED"),
        "{}",
        text(&report)
    );
}
