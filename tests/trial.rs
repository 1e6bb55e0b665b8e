//! The README's walk-through on the shipped proxy.toml: `serve`, add a user
//! with a local password, enroll and activate an authenticator app, then log
//! in with radclient in two rounds, and in one with an inline code.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};

fn bin(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = run_bin(dir, args, stdin);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

#[test]
fn first_login_on_the_shipped_trial_configuration() {
    if !have("radclient") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let http_port = free_port();
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    assert!(
        shipped.contains("127.0.0.1:8080"),
        "the shipped HTTP listener"
    );
    std::fs::write(
        dir.path().join("proxy.toml"),
        shipped
            .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{port}\"]"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{http_port}")),
    )
    .expect("write");

    // The README starts `serve` first, which creates the store on its first
    // run; here the users come first, so the store is created explicitly.
    bin(dir.path(), &["init"], None);
    bin(
        dir.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    let enroll = bin(dir.path(), &["totp", "enroll", "alice"], None);
    let seed = seed_from_enroll(&enroll);
    let p = TotpParams::default();
    bin(
        dir.path(),
        &["totp", "activate", "alice", &totp_code(&p, &seed, now())],
        None,
    );

    let mut serve = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let login = |input: &str| {
        text(&radclient(
            to,
            "auth",
            "testing123",
            input,
            &["-x", "-r", "1", "-t", "4"],
        ))
    };
    // Wait for the listener: a wrong password is a (delayed) reject once up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let out =
            login("User-Name = alice\nUser-Password = alice-pass\nMessage-Authenticator = 0x00\n");
        if out.contains("Received") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first.contains("Received Access-Challenge") && first.contains("Enter the code"),
        "{first}"
    );
    let state = first
        .lines()
        .skip_while(|l| !l.contains("Received"))
        .find_map(|l| l.trim().strip_prefix("State = "))
        .expect("State");
    // The activation used this step's code: answer with the next step's.
    let code = totp_code(&p, &seed, now() + 30);
    let second = login(&format!(
        "User-Name = alice\nUser-Password = {code}\nState = {state}\nMessage-Authenticator = 0x00\n"
    ));
    assert!(second.contains("Received Access-Accept"), "{second}");
    // Inline, with a code of a later step still inside the window... none is
    // left (window 1), so a replay of that code must be refused.
    let replay = login(&format!(
        "User-Name = alice\nUser-Password = \"alice-pass,{code}\"\nMessage-Authenticator = 0x00\n"
    ));
    assert!(replay.contains("Received Access-Reject"), "{replay}");

    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .expect("kill");
    let _ = serve.wait();
    let mut log = String::new();
    use std::io::Read;
    serve
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(log.contains("trial secret"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes off a terminal:\n{log}"
    );
    assert!(
        !log.contains(&code) && !log.contains("alice-pass"),
        "secrets in the log:\n{log}"
    );
    let report = bin(dir.path(), &["report", "signins", "--format", "csv"], None);
    assert!(
        report.contains("SUCCESS_OATH_CODE_VERIFIED")
            && report.contains("FAILED_OATH_CODE_DUPLICATE"),
        "{report}"
    );
}
