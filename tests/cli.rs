//! The `mfa-proxy` binary: `check` and `serve`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
}

#[test]
fn check_accepts_the_shipped_config_without_printing_secrets() {
    let o = bin()
        .args(["check", "--config"])
        .arg(workspace().join("proxy.toml"))
        .output()
        .expect("run");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("listen auth 127.0.0.1:1812")
            && out.contains("primary: local")
            && out.contains("OK"),
        "{out}"
    );
    assert!(!out.contains("testing123"), "a secret was printed:\n{out}");
}

#[test]
fn check_names_the_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    let bad = shipped.replace(
        "challenge_timeout = \"120s\"",
        "challenge_timeout = \"3 fortnights\"",
    );
    let p = dir.path().join("proxy.toml");
    std::fs::write(&p, bad).expect("write");
    let o = bin()
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let out = text(&o);
    assert!(
        out.contains("mfa.challenge_timeout") && out.contains("not a duration"),
        "{out}"
    );
    assert!(!out.contains("testing123"), "{out}");
}

#[test]
fn serve_runs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, acct) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    let conf = shipped
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
        .replace(
            "# acct_listen = [\"127.0.0.1:1813\"]",
            &format!("acct_listen = [\"127.0.0.1:{acct}\"]"),
        );
    let p = dir.path().join("proxy.toml");
    std::fs::write(&p, conf).expect("write");
    let child = bin()
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&p)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // It answers Status-Server once up.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let req = {
        use mfa_proxy::radius::{Code, PacketBuilder};
        let mut b = PacketBuilder::new(Code::STATUS_SERVER, 1, &[3; 16]);
        b.push_message_authenticator().expect("fits");
        b.finish_request(b"testing123")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        sock.send_to(&req, ("127.0.0.1", auth)).expect("send");
        let mut buf = [0u8; 100];
        answered = matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0] == 2);
    }
    assert!(answered, "serve did not answer Status-Server");
    // SIGHUP (systemctl reload) checks the file again and never stops it.
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    std::thread::sleep(Duration::from_millis(300));
    sock.send_to(&req, ("127.0.0.1", auth)).expect("send");
    let mut buf = [0u8; 100];
    assert!(
        matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0] == 2),
        "still answering after SIGHUP"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "exit {:?}", o.status);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.lines().all(|l| l.starts_with('{')),
        "json log lines:\n{log}"
    );
    assert!(
        log.contains("status_server_answered=2")
            && log.contains("SIGTERM")
            && log.contains("SIGHUP: the configuration is valid"),
        "{log}"
    );
    assert!(
        log.contains("trial secret") && !log.contains("\"testing123\"\""),
        "{log}"
    );
}
