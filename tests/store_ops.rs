//! The store as a whole, with the real binary: `backup` while `serve`
//! handles logins and `restore` elsewhere; `restore` refused while `serve`
//! runs; `migrate` from SQLite into PostgreSQL, then two nodes on it; and
//! PostgreSQL's own route, `pg_dump` of a database in use and `pg_restore`
//! into a new one. Logins go through the test's own RADIUS client.

mod common;
#[path = "support/pg_server.rs"]
mod pg_server;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::radius::{Code, Packet, PacketBuilder, crypto};
use mfa_proxy::store::{SeedKey, SqliteStore, Store};

const SECRET: &[u8] = b"testing123";
const USERS: usize = 8;

/// A child killed when the test ends, even by a panic.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Request number `n` for `user`: its authenticator is unique.
fn request(n: u64, user: &str, password: &str) -> Vec<u8> {
    let mut auth = [0x3c; 16];
    auth[..8].copy_from_slice(&n.to_be_bytes());
    let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, n as u8, &auth);
    b.push_message_authenticator().expect("fits");
    b.push(1, user.as_bytes()).expect("fits");
    let pw = crypto::hide_password(password.as_bytes(), SECRET, &auth).expect("hide");
    b.push(2, &pw).expect("fits");
    b.finish_request(SECRET)
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// One login; the answer's code (sent again if no answer comes).
fn login(to: SocketAddr, user: &str, password: &str) -> Code {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let packet = request(NEXT.fetch_add(1, Ordering::Relaxed), user, password);
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        sock.send_to(&packet, to).expect("send");
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Packet::parse(&buf[..n]).expect("an answer").code();
        }
    }
    panic!("no answer from {to}");
}

/// The shipped configuration in `dir` on free ports, named `name`, with
/// `replace` applied too; its RADIUS address and HTTP port.
fn config(dir: &Path, name: &str, replace: &[(&str, &str)]) -> (SocketAddr, u16) {
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    let mut all = vec![
        ("name = \"mfa-proxy-1\"", format!("name = \"{name}\"")),
        ("reject_delay = \"1s\"", "reject_delay = \"0s\"".to_owned()),
    ];
    all.extend(replace.iter().map(|(a, b)| (*a, (*b).to_owned())));
    let all: Vec<(&str, &str)> = all.iter().map(|(a, b)| (*a, b.as_str())).collect();
    shipped_config_in(dir, &all)
}

/// `serve` in `dir` (with `env`), once its HTTP port answers.
fn serve(dir: &Path, http: u16, env: &[(&str, &str)]) -> Killed {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
            .args(["serve", "--config"])
            .arg(dir.join("proxy.toml"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "serve did not come up:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `mfa-proxy ARGS --config DIR/proxy.toml` with `env`.
fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(args)
        .arg("--config")
        .arg(dir.join("proxy.toml"))
        .envs(env.iter().copied())
        .output()
        .expect("run mfa-proxy")
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Enrolls and activates an authenticator app for `user`; its code at a time.
fn enroll(dir: &Path, user: &str) -> impl Fn(u64) -> String {
    let out = ok(run_bin(dir, &["totp", "enroll", user], None));
    let seed = seed_from_enroll(&out);
    let code_at = move |t: u64| totp_code(&TotpParams::default(), &seed, t);
    ok(run_bin(
        dir,
        &["totp", "activate", user, &code_at(now())],
        None,
    ));
    code_at
}

#[test]
fn backup_while_serving_restores_elsewhere_and_restore_waits_for_serve() {
    let a = tempfile::tempdir().expect("a");
    let (to, http) = config(
        a.path(),
        "node-a",
        &[("unenrolled = \"reject\"", "unenrolled = \"accept\"")],
    );
    ok(run_bin(a.path(), &["init"], None));
    for i in 0..USERS {
        let user = format!("user{i}");
        ok(run_bin(
            a.path(),
            &["user", "add", &user, "--password-stdin"],
            Some("stream-pass\n"),
        ));
    }
    let _serve = serve(a.path(), http, &[]);

    // A stream of logins, about 16 in flight, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let accepts = Arc::new(AtomicUsize::new(0));
    let stream = {
        let (stop, accepts) = (stop.clone(), accepts.clone());
        std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let (mut in_flight, mut buf) = (0, [0u8; 4096]);
            while !stop.load(Ordering::Relaxed) {
                while in_flight < 16 {
                    let n = NEXT.fetch_add(1, Ordering::Relaxed);
                    let user = format!("user{}", n as usize % USERS);
                    sock.send_to(&request(n, &user, "stream-pass"), to)
                        .expect("send");
                    in_flight += 1;
                }
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        in_flight -= 1;
                        let p = Packet::parse(&buf[..n]).expect("an answer");
                        assert_eq!(p.code(), Code::ACCESS_ACCEPT);
                        accepts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => in_flight = 0,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepts.load(Ordering::Relaxed) < 50 {
        assert!(Instant::now() < deadline, "the stream of logins is stuck");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The backup, taken while logins are being written.
    let before_backup = accepts.load(Ordering::Relaxed);
    let backup = a.path().join("mfa-backup.db");
    let out = ok(run_bin(
        a.path(),
        &["backup", backup.to_str().expect("utf-8")],
        None,
    ));
    assert!(out.contains(&format!("{USERS} users")), "{out}");
    assert!(out.contains("seed key is not in the backup"), "{out}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over an existing file.
    let o = run_bin(a.path(), &["backup", backup.to_str().expect("utf-8")], None);
    assert!(
        !o.status.success() && text(&o).contains("exists"),
        "{}",
        text(&o)
    );
    // A restore while serve runs is refused, and changes nothing.
    let o = run_bin(
        a.path(),
        &["restore", backup.to_str().expect("utf-8")],
        None,
    );
    assert!(
        !o.status.success() && text(&o).contains("in use"),
        "{}",
        text(&o)
    );
    let files: Vec<_> = std::fs::read_dir(a.path().join("data"))
        .expect("data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.contains("restor")), "{files:?}");
    stop.store(true, Ordering::Relaxed);
    stream.join().expect("the stream");
    assert!(accepts.load(Ordering::Relaxed) > before_backup);

    // Restored into a fresh directory with the key file copied.
    let b = tempfile::tempdir().expect("b");
    let (to_b, http_b) = config(
        b.path(),
        "node-b",
        &[("unenrolled = \"reject\"", "unenrolled = \"accept\"")],
    );
    let o = run_bin(
        b.path(),
        &["restore", backup.to_str().expect("utf-8")],
        None,
    );
    assert!(
        !o.status.success() && text(&o).contains("no seed key"),
        "{}",
        text(&o)
    );
    std::fs::copy(
        a.path().join("data/seed.key"),
        b.path().join("data/seed.key"),
    )
    .expect("key");
    let out = ok(run_bin(
        b.path(),
        &["restore", backup.to_str().expect("utf-8")],
        None,
    ));
    assert!(out.contains("there was no database to replace"), "{out}");
    // Again: the database replaced is kept.
    let out = ok(run_bin(
        b.path(),
        &["restore", backup.to_str().expect("utf-8")],
        None,
    ));
    assert!(out.contains(".before-restore-"), "{out}");
    {
        let key = SeedKey::load(&b.path().join("data/seed.key")).expect("key");
        let store = SqliteStore::open(&b.path().join("data/mfa.db"), key).expect("open");
        assert_eq!(store.users().expect("users").len(), USERS);
        let recorded = store.audit(None, None).expect("audit").len();
        // Every Accept that had left before the backup began is in it.
        assert!(recorded >= before_backup, "{recorded} < {before_backup}");
    }
    let _serve_b = serve(b.path(), http_b, &[]);
    assert_eq!(login(to_b, "user3", "stream-pass"), Code::ACCESS_ACCEPT);
    assert_eq!(login(to_b, "user3", "wrong-pass"), Code::ACCESS_REJECT);
}

#[test]
fn migrate_from_sqlite_then_two_nodes_on_postgres() {
    let Some(server) = pg_server::PgServer::shared() else {
        return;
    };
    let s = tempfile::tempdir().expect("sqlite node");
    config(s.path(), "single", &[]);
    ok(run_bin(s.path(), &["init"], None));
    for user in ["alice", "bob", "carol"] {
        ok(run_bin(
            s.path(),
            &["user", "add", user, "--password-stdin", "--groups", "vpn"],
            Some(&format!("{user}-pass\n")),
        ));
    }
    let alice = enroll(s.path(), "alice");
    let bob = enroll(s.path(), "bob");
    ok(run_bin(
        s.path(),
        &["bypass", "carol", "--reason", "test"],
        None,
    ));

    let url = server.new_database();
    let env = [("MFA_TEST_DB_URL", url.as_str())];
    let out = ok(run_env(
        s.path(),
        &["migrate", "--to-env", "MFA_TEST_DB_URL"],
        &env,
    ));
    assert!(
        out.contains("3 users (3 group memberships), 2 tokens"),
        "{out}"
    );
    assert!(out.contains("1 bypasses"), "{out}");
    let password = url.split(':').nth(2).and_then(|p| p.split('@').next());
    assert!(!out.contains(password.expect("a password")), "{out}");
    // Only into an empty database.
    let o = run_env(s.path(), &["migrate", "--to-env", "MFA_TEST_DB_URL"], &env);
    assert!(
        !o.status.success() && text(&o).contains("not empty"),
        "{}",
        text(&o)
    );

    // Two nodes on it: one with url, one with url_env; the key copied.
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (to_a, http_a) = config(
        a.path(),
        "node-a",
        &[("path = \"data/mfa.db\"", &format!("url = \"{url}\""))],
    );
    let (to_b, http_b) = config(
        b.path(),
        "node-b",
        &[("path = \"data/mfa.db\"", "url_env = \"MFA_TEST_DB_URL\"")],
    );
    for d in [a.path(), b.path()] {
        std::fs::copy(s.path().join("data/seed.key"), d.join("data/seed.key")).expect("key");
    }
    let _a = serve(a.path(), http_a, &[]);
    let _b = serve(b.path(), http_b, &env);
    // The step after the one that activated each token (the window takes it).
    let (code_a, code_b) = (alice(now() + 30), bob(now() + 30));
    assert_eq!(
        login(to_a, "alice", &format!("alice-pass,{code_a}")),
        Code::ACCESS_ACCEPT
    );
    assert_eq!(
        login(to_b, "bob", &format!("bob-pass,{code_b}")),
        Code::ACCESS_ACCEPT
    );
    // A code used at one node is refused at the other.
    assert_eq!(
        login(to_b, "alice", &format!("alice-pass,{code_a}")),
        Code::ACCESS_REJECT
    );
    let report = ok(run_bin(
        a.path(),
        &["report", "signins", "--format", "csv"],
        None,
    ));
    assert!(
        report.contains("node-a") && report.contains("node-b"),
        "{report}"
    );
}

#[test]
fn pg_dump_of_a_database_in_use_restores_into_a_new_one() {
    let Some(server) = pg_server::PgServer::shared() else {
        return;
    };
    let url = server.new_database();
    let a = tempfile::tempdir().expect("a");
    let (to_a, http_a) = config(
        a.path(),
        "node-a",
        &[("path = \"data/mfa.db\"", &format!("url = \"{url}\""))],
    );
    ok(run_bin(a.path(), &["init"], None));
    ok(run_bin(
        a.path(),
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    ));
    let alice = enroll(a.path(), "alice");
    // backup and restore name PostgreSQL's tools instead.
    let o = run_bin(a.path(), &["backup", "x.db"], None);
    assert!(
        !o.status.success() && text(&o).contains("pg_dump"),
        "{}",
        text(&o)
    );
    let o = run_bin(a.path(), &["restore", "x.db"], None);
    assert!(
        !o.status.success() && text(&o).contains("pg_restore"),
        "{}",
        text(&o)
    );

    let _a = serve(a.path(), http_a, &[]);
    assert_eq!(
        login(to_a, "alice", "alice-pass,000000"),
        Code::ACCESS_REJECT
    );
    let dump = a.path().join("mfa.dump");
    let o = Command::new(server.bin("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .args(["-d", &url])
        .output()
        .expect("pg_dump");
    assert!(o.status.success(), "{}", text(&o));
    let restored = server.new_database();
    let o = Command::new(server.bin("pg_restore"))
        .args(["--no-owner", "-d", &restored])
        .arg(&dump)
        .output()
        .expect("pg_restore");
    assert!(o.status.success(), "{}", text(&o));

    let b = tempfile::tempdir().expect("b");
    let (to_b, http_b) = config(
        b.path(),
        "node-b",
        &[("path = \"data/mfa.db\"", &format!("url = \"{restored}\""))],
    );
    std::fs::copy(
        a.path().join("data/seed.key"),
        b.path().join("data/seed.key"),
    )
    .expect("key");
    let _b = serve(b.path(), http_b, &[]);
    let code = alice(now() + 30);
    assert_eq!(
        login(to_b, "alice", &format!("alice-pass,{code}")),
        Code::ACCESS_ACCEPT
    );
    // The restored database is another one: the code is still good at A.
    assert_eq!(
        login(to_a, "alice", &format!("alice-pass,{code}")),
        Code::ACCESS_ACCEPT
    );
}
