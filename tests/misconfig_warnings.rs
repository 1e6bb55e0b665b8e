//! Silent misconfiguration made loud (issue 14, defect 7): a NAS that sends
//! no Message-Authenticator, and an upstream (FreeRADIUS 3.2, PAP) that
//! answers without one, each get a warning at the default log level that
//! names the client or upstream and the setting to change — once per
//! interval, however many requests there are.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn unsigned_requests_and_replies_are_named_with_the_setting_to_change() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("proxy.toml"),
        format!(
            "[server]\nauth_listen = [\"127.0.0.1:{port}\"]\n[mfa]\nenabled = false\n\
             [[client]]\nname = \"pam-host\"\naddress = \"127.0.0.1\"\nsecret = \"{NAS_SECRET}\"\n\
             [[upstream]]\nname = \"fr32\"\naddress = \"{}\"\nsecret = \"{UPSTREAM_SECRET}\"\n\
             timeout = \"300ms\"\nretries = 0\nhealth_check = \"none\"\n",
            fr.auth
        ),
    )
    .expect("write");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::thread::sleep(Duration::from_millis(500));
    // As pam_radius_auth 2.0 does: no Message-Authenticator, three times.
    for _ in 0..3 {
        let out = text(&radclient(
            to,
            "auth",
            NAS_SECRET,
            "User-Name = alice\nUser-Password = alice-pass\n",
            &["-r", "1", "-t", "1"],
        ));
        assert!(!out.contains("Received"), "dropped: {out}");
    }
    // Signed: forwarded, and FreeRADIUS's unsigned PAP Accept is dropped.
    let started = Instant::now();
    for _ in 0..3 {
        pap(to, "alice", "alice-pass", None, &["-r", "1", "-t", "1"]);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    let mut log = String::new();
    serve
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        lines("without Message-Authenticator: configure the NAS"),
        1,
        "one line for three requests:\n{log}"
    );
    assert!(
        log.contains("client=pam-host")
            && log.contains("require_message_authenticator = false in this [[client]]"),
        "{log}"
    );
    assert_eq!(
        lines("dropped a reply without Message-Authenticator"),
        1,
        "{log}"
    );
    assert!(
        log.contains("upstream=fr32")
            && log.contains("require_message_authenticator = false in this [[upstream]]"),
        "{log}"
    );
    assert!(!log.contains(NAS_SECRET) && !log.contains("alice-pass"));
}
