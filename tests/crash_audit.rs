//! A crash loses no record of an answer that left (issue 14, defect 2):
//! `kill -9` while Access-Accepts are arriving, then every Accept the NAS
//! received has its audit record in the database. Before, the record was a
//! separate job committed after the Accept had left, and about 1 in 300
//! Accepts had none.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mfa_proxy::radius::{Code, Packet, PacketBuilder, crypto};
use mfa_proxy::store::{SeedKey, SqliteStore, Store};

const USERS: usize = 16;

/// A child killed when the test ends, even by a panic.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Request number `n`: its authenticator is unique, so no two are
/// duplicates of each other.
fn request(n: u64, user: &str) -> Vec<u8> {
    let mut auth = [0x5a; 16];
    auth[..8].copy_from_slice(&n.to_be_bytes());
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, n as u8, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(1, user.as_bytes()).expect("fits");
    let pw = crypto::hide_password(b"crash-pass", b"testing123", &auth).expect("hide");
    b.push(2, &pw).expect("fits");
    b.finish_request(b"testing123")
}

#[test]
fn kill_9_as_accepts_arrive_loses_no_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (to, _) = shipped_config_in(
        dir.path(),
        &[("unenrolled = \"reject\"", "unenrolled = \"accept\"")],
    );
    assert!(run_bin(dir.path(), &["init"], None).status.success());
    for i in 0..USERS {
        let o = run_bin(
            dir.path(),
            &["user", "add", &format!("user{i}"), "--password-stdin"],
            Some("crash-pass\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut total_accepts = 0;
    for round in 0..3u32 {
        let mut serve = Killed(
            Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
                .args(["serve", "--config"])
                .arg(dir.path().join("proxy.toml"))
                .stderr(Stdio::null())
                .spawn()
                .expect("serve"),
        );
        let mut accepts = 0;
        let mut next = u64::from(round) << 32;
        let mut quiet = Instant::now();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(60);
        // Keep about 32 logins in flight; kill as the 100th Accept arrives.
        let mut in_flight = 0;
        while accepts < 100 {
            assert!(
                Instant::now() < deadline,
                "round {round}: {accepts} accepts"
            );
            while in_flight < 32 {
                let user = format!("user{}", next as usize % USERS);
                sock.send_to(&request(next, &user), to).expect("send");
                next += 1;
                in_flight += 1;
            }
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    in_flight -= 1;
                    quiet = Instant::now();
                    let p = Packet::parse(&buf[..n]).expect("a valid answer");
                    assert_eq!(p.code(), Code::ACCESS_ACCEPT);
                    accepts += 1;
                }
                // Not up yet (the first requests are lost): send more.
                Err(_) if quiet.elapsed() > Duration::from_secs(1) => {
                    in_flight = 0;
                    quiet = Instant::now();
                }
                Err(_) => {}
            }
        }
        let _ = serve.0.kill(); // SIGKILL
        let _ = serve.0.wait();
        // Answers that left before the kill may still be queued here.
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if Packet::parse(&buf[..n]).is_ok_and(|p| p.code() == Code::ACCESS_ACCEPT) {
                accepts += 1;
            }
        }
        total_accepts += accepts;
        let key = SeedKey::load(&dir.path().join("data/seed.key")).expect("key");
        let store = SqliteStore::open(&dir.path().join("data/mfa.db"), key).expect("open");
        let recorded = store
            .audit(None, None)
            .expect("audit")
            .iter()
            .filter(|a| a.accepted)
            .count();
        assert!(
            recorded >= total_accepts,
            "round {round}: {total_accepts} Accepts received, {recorded} on record"
        );
    }
}

/// A login still waiting for its code when the proxy is stopped (issue 14,
/// defect 8) is recorded on the way out, not lost.
#[test]
fn sigterm_records_the_logins_still_pending() {
    if !have("radclient") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (to, _) = shipped_config_in(dir.path(), &[]);
    assert!(run_bin(dir.path(), &["init"], None).status.success());
    let o = run_bin(
        dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let enroll = text(&run_bin(dir.path(), &["totp", "enroll", "alice"], None));
    let seed = seed_from_enroll(&enroll);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let code = mfa_proxy::mfa::otp::totp_code(&Default::default(), &seed, now);
    let o = run_bin(dir.path(), &["totp", "activate", "alice", &code], None);
    assert!(o.status.success(), "{}", text(&o));

    let mut serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
            .args(["serve", "--config"])
            .arg(dir.path().join("proxy.toml"))
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let challenged = loop {
        let out = text(&radclient(
            to,
            "auth",
            "testing123",
            "User-Name = alice\nUser-Password = alice-pass\nMessage-Authenticator = 0x00\n",
            &["-x", "-r", "1", "-t", "3"],
        ));
        if out.contains("Received") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        challenged.contains("Received Access-Challenge"),
        "{challenged}"
    );
    // The code is never typed: the proxy stops first.
    Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .expect("kill");
    let status = serve.0.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    let report = text(&run_bin(
        dir.path(),
        &["report", "signins", "--format", "csv"],
        None,
    ));
    assert!(
        report.contains("FAILED_SERVER_ERROR") && report.contains("the proxy stopped"),
        "{report}"
    );
}
