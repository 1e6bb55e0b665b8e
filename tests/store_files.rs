//! The store's files: admin commands never create a store, `serve` creates
//! one only on a first run and refuses one that vanished, and a running
//! `serve` notices its database removed or replaced and fails closed.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The shipped configuration in a temporary directory, on free ports,
/// letting unenrolled users through (so a login needs no code).
fn site() -> (tempfile::TempDir, SocketAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (to, _) = shipped_config_in(
        dir.path(),
        &[
            ("unenrolled = \"reject\"", "unenrolled = \"accept\""),
            ("reject_delay = \"1s\"", "reject_delay = \"0s\""),
        ],
    );
    (dir, to)
}

fn serve(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.join("proxy.toml"))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve")
}

fn stop(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    log
}

fn login(to: SocketAddr) -> String {
    text(&radclient(
        to,
        "auth",
        "testing123",
        "User-Name = alice\nUser-Password = alice-pass\nMessage-Authenticator = 0x00\n",
        &["-x", "-r", "1", "-t", "3"],
    ))
}

/// Logs in until the proxy answers (it may still be starting).
fn first_login(to: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = login(to);
        if out.contains("Received") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn admin_commands_never_create_a_store_and_init_does() {
    let (dir, _) = site();
    let db = dir.path().join("data/mfa.db");
    let o = run_bin(dir.path(), &["user", "add", "alice"], None);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains("mfa.db") && err.contains("mfa-proxy init"),
        "{err}"
    );
    assert!(!db.exists(), "no database was created");
    assert!(!dir.path().join("data/seed.key").exists(), "nor a key");

    let o = run_bin(dir.path(), &["init"], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("back them up together"), "{}", text(&o));
    assert!(db.exists());
    use std::os::unix::fs::PermissionsExt;
    for f in ["data/mfa.db", "data/seed.key"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f} is for its owner only");
    }
    let o = run_bin(dir.path(), &["user", "add", "alice"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_bin(dir.path(), &["init"], None);
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));

    // A database without its key is refused, not given a new key.
    std::fs::remove_file(dir.path().join("data/seed.key")).expect("rm key");
    let o = run_bin(dir.path(), &["user", "list"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("restore the key"), "{}", text(&o));
    assert!(!dir.path().join("data/seed.key").exists());
}

#[test]
fn serve_creates_on_a_first_run_and_refuses_a_store_that_vanished() {
    if !have("radclient") {
        return;
    }
    let (dir, to) = site();
    let child = serve(dir.path(), &[]);
    // Alice is no user yet: answered (rejected), which shows it is up.
    let out = first_login(to);
    let log = stop(child);
    assert!(out.contains("Received Access-Reject"), "{out}\n{log}");
    assert!(log.contains("first run: created the store"), "{log}");
    assert!(log.contains("every login passes"), "{log}");

    std::fs::remove_file(dir.path().join("data/mfa.db")).expect("rm");
    let o = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .output()
        .expect("serve");
    assert!(!o.status.success(), "refused");
    assert!(text(&o).contains("deleted or moved"), "{}", text(&o));
    assert!(!dir.path().join("data/mfa.db").exists());
    // An empty file where the database was (a botched restore) is no store.
    std::fs::write(dir.path().join("data/mfa.db"), b"").expect("truncate");
    let o = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(dir.path().join("proxy.toml"))
        .output()
        .expect("serve");
    assert!(!o.status.success(), "an empty file is refused too");
    assert!(text(&o).contains("deleted or moved"), "{}", text(&o));
    std::fs::remove_file(dir.path().join("data/mfa.db")).expect("rm");

    // Told, it starts on an empty one.
    let child = serve(dir.path(), &["--allow-empty-store"]);
    let out = first_login(to);
    let log = stop(child);
    assert!(out.contains("Received Access-Reject"), "{out}\n{log}");
    assert!(log.contains("created an empty database"), "{log}");
}

#[test]
fn a_database_removed_or_replaced_under_serve_fails_closed() {
    if !have("radclient") {
        return;
    }
    for replace in [false, true] {
        let (dir, to) = site();
        assert!(run_bin(dir.path(), &["init"], None).status.success());
        let o = run_bin(
            dir.path(),
            &["user", "add", "alice", "--password-stdin"],
            Some("alice-pass\n"),
        );
        assert!(o.status.success(), "{}", text(&o));
        let child = serve(dir.path(), &[]);
        let out = first_login(to);
        assert!(out.contains("Received Access-Accept"), "{out}");

        let db = dir.path().join("data/mfa.db");
        if replace {
            // A copy moved over it: another file at the same path.
            let copy = dir.path().join("data/copy.db");
            std::fs::copy(&db, &copy).expect("copy");
            std::fs::rename(&copy, &db).expect("rename");
        } else {
            std::fs::remove_file(&db).expect("rm");
        }
        std::thread::sleep(Duration::from_millis(1200));
        let out = login(to);
        let log = stop(child);
        assert!(
            out.contains("Received Access-Reject"),
            "replace={replace}: {out}\n{log}"
        );
        assert!(log.contains("removed or replaced"), "{log}");
    }
}
