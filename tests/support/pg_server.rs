//! A private, throwaway PostgreSQL server for tests (std only).
//!
//! Each [`PgServer`] gets its own temporary directory under /tmp (data,
//! Unix socket and logs), listens on 127.0.0.1 at a free port with
//! scram-sha-256 password authentication over TCP, and has a login role
//! `mfa` with a random password that owns the databases made by
//! [`PgServer::new_database`]. Running as root, the server runs as the
//! `postgres` user (PostgreSQL refuses root) and the directory is owned by it.
//!
//! Dropping a server stops it and removes its directory. A watchdog process
//! (`sh`) does the same when the test process dies without dropping it (the
//! never-dropped [`PgServer::shared`] server, a killed test binary).
//!
//! Include it from unit tests with
//! `#[path = "../../tests/support/pg_server.rs"] mod pg_server;` (path from
//! the including file) or from integration tests with
//! `#[path = "support/pg_server.rs"] mod pg_server;`.
#![allow(dead_code)]

#[path = "sandbox.rs"]
mod sandbox;
use sandbox::{
    free_port, make_dir, random_hex, release_watchdog, run, run_as, spawn_watchdog, tail,
};

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How many ports `start` tries before giving up.
const START_TRIES: u32 = 5;
/// Seconds `pg_ctl -w` waits for a start or stop.
const PG_CTL_WAIT_SECS: u64 = 30;
/// Upper bound on any one helper command (initdb, pg_ctl, psql).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Binaries the harness itself needs in the installation's directory.
const REQUIRED_BINS: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// A running (or deliberately stopped) private PostgreSQL server; dropping it
/// stops the server and removes its directory.
pub struct PgServer {
    /// The temporary directory: `data/`, `sock/`, `server.log`, `initdb.log`.
    dir: PathBuf,
    /// The installation's binaries.
    bindir: PathBuf,
    /// TCP port on 127.0.0.1 (kept across restarts).
    port: u16,
    /// Password of the `mfa` role.
    password: String,
    /// (uid, gid) the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    /// Whether the server is believed to be up.
    running: AtomicBool,
    /// Counter for unique database names.
    next_db: AtomicU32,
    /// Serialises stop/start.
    lifecycle: Mutex<()>,
    /// The cleanup watchdog; dropping its stdin lets it run.
    watchdog: Mutex<Option<Child>>,
}

impl PgServer {
    /// Starts a new server on 127.0.0.1 at a free port, in a new temp
    /// directory. Err says why (binaries missing, no `postgres` user when
    /// root, initdb or start failed, with the tail of the log).
    pub fn start() -> Result<PgServer, String> {
        let bindir = find_bindir()?;
        let run_as = run_as("postgres")?;
        let dir = make_dir("mfa-pg", run_as, &["sock"])?;
        let watchdog = spawn_watchdog("pg-server-watchdog", &dir, "data/postmaster.pid", "QUIT");
        // From here on, dropping `server` cleans up whatever exists.
        let mut server = PgServer {
            dir,
            bindir,
            port: 0,
            password: random_hex(16),
            run_as,
            running: AtomicBool::new(false),
            next_db: AtomicU32::new(1),
            lifecycle: Mutex::new(()),
            watchdog: Mutex::new(watchdog),
        };
        server.initdb()?;
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => break,
                Err(e) => {
                    failures.push(e);
                    server.stop_quietly();
                }
            }
        }
        if !server.running.load(Ordering::SeqCst) {
            return Err(format!(
                "PostgreSQL did not start in {START_TRIES} tries: {}",
                failures.join(" | ")
            ));
        }
        server.psql_admin(&format!(
            "CREATE ROLE mfa LOGIN CREATEDB PASSWORD '{}'",
            server.password
        ))?;
        server.check_tcp()?;
        Ok(server)
    }

    /// The server, or what tests do when there is none: when CI=true a
    /// server that cannot be started is a failure (panics with the reason);
    /// otherwise returns None and prints "skipped: <reason>" to stderr.
    pub fn start_or_skip() -> Option<PgServer> {
        match PgServer::start() {
            Ok(server) => Some(server),
            Err(reason) => {
                skip_or_panic(&reason);
                None
            }
        }
    }

    /// One process-wide server shared by the tests of one test binary
    /// (started on first use), for tests that do not stop or restart it;
    /// give each test its own `new_database()`. Same CI rule as
    /// `start_or_skip`. Its watchdog removes it when the process exits.
    pub fn shared() -> Option<&'static PgServer> {
        static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
        match SHARED.get_or_init(PgServer::start) {
            Ok(server) => Some(server),
            Err(reason) => {
                skip_or_panic(reason);
                None
            }
        }
    }

    /// The TCP port the server listens on at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new empty database with a unique name, owned by the `mfa` role,
    /// returning its URL: postgres://mfa:<password>@127.0.0.1:<port>/<db>.
    /// Panics if the server refuses (e.g. it is stopped).
    pub fn new_database(&self) -> String {
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        if let Err(e) = self.psql_admin(&format!("CREATE DATABASE {name} OWNER mfa")) {
            panic!("cannot create database {name}: {e}");
        }
        self.url(&name)
    }

    /// Stops the server (`pg_ctl stop -m fast`) and starts it again on the
    /// same port and data: to test that clients recover.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server (`pg_ctl stop -m fast`); connections fail until
    /// `start_again`. Panics if it does not stop.
    pub fn stop(&self) {
        let _guard = self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = self.pg_ctl_stop("fast") {
            panic!("cannot stop PostgreSQL: {e}");
        }
    }

    /// Starts the stopped server again on the same port and data, waiting
    /// until it accepts connections over TCP. Panics if it cannot.
    pub fn start_again(&self) {
        let _guard = self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.running.load(Ordering::SeqCst) {
            return;
        }
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            match self.pg_ctl_start().and_then(|()| self.check_tcp()) {
                Ok(()) => return,
                Err(e) => {
                    failures.push(e);
                    self.stop_quietly();
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!(
            "cannot start PostgreSQL again on port {}: {}",
            self.port,
            failures.join(" | ")
        );
    }

    /// Path of a binary of the server's installation (pg_dump, pg_restore,
    /// psql, ...), for tests of backups.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://mfa:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// A command for one of the installation's binaries, with a clean
    /// environment, run as the server's user when `as_server`.
    fn command(&self, name: &str, as_server: bool) -> Command {
        let mut cmd = Command::new(self.bin(name));
        cmd.current_dir(&self.dir);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .env("PGPASSFILE", self.dir.join("no-pgpass"));
        if as_server {
            if let Some((uid, gid)) = self.run_as {
                cmd.uid(uid).gid(gid).env("HOME", &self.dir);
            }
        }
        cmd
    }

    /// initdb with C.UTF-8, or without a locale if that one is missing.
    fn initdb(&self) -> Result<(), String> {
        let mut failures = Vec::new();
        for locale in ["--locale=C.UTF-8", "--no-locale"] {
            let _ = fs::remove_dir_all(self.data());
            let mut cmd = self.command("initdb", true);
            cmd.arg("-D").arg(self.data()).args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
                locale,
            ]);
            let out = run(cmd, COMMAND_TIMEOUT)?;
            let _ = fs::write(self.dir.join("initdb.log"), &out.text);
            if out.ok {
                return Ok(());
            }
            failures.push(format!("initdb {locale} failed: {}", tail(&out.text)));
        }
        Err(failures.join(" | "))
    }

    /// `pg_ctl start -w` on `self.port`; Ok once the server is ready.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.sock().display()
        );
        let mut cmd = self.command("pg_ctl", true);
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", &PG_CTL_WAIT_SECS.to_string(), "start", "-o"])
            .arg(options);
        let out = run(cmd, Duration::from_secs(PG_CTL_WAIT_SECS + 15))
            .map_err(|e| format!("{e}; server log: {}", self.log_tail()))?;
        if !out.ok {
            return Err(format!(
                "pg_ctl start on port {} failed: {}; server log: {}",
                self.port,
                tail(&out.text),
                self.log_tail()
            ));
        }
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// `pg_ctl stop -w` in this mode (fast, immediate).
    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let mut cmd = self.command("pg_ctl", true);
        cmd.arg("-D").arg(self.data()).args([
            "-m",
            mode,
            "-w",
            "-t",
            &PG_CTL_WAIT_SECS.to_string(),
            "stop",
        ]);
        let out = run(cmd, Duration::from_secs(PG_CTL_WAIT_SECS + 15))?;
        if !out.ok && self.postmaster_pid().is_some() {
            return Err(format!(
                "pg_ctl stop -m {mode} failed: {}; server log: {}",
                tail(&out.text),
                self.log_tail()
            ));
        }
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Stops whatever is running, by any means, without failing.
    fn stop_quietly(&self) {
        if self.postmaster_pid().is_none() {
            self.running.store(false, Ordering::SeqCst);
            return;
        }
        if self.pg_ctl_stop("immediate").is_ok() {
            return;
        }
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.running.store(false, Ordering::SeqCst);
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Runs SQL as the superuser over the Unix socket (trust).
    fn psql_admin(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.command("psql", false);
        cmd.args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.sock())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql]);
        let out = run(cmd, COMMAND_TIMEOUT)?;
        if out.ok {
            Ok(out.text)
        } else {
            Err(format!("psql failed on `{sql}`: {}", tail(&out.text)))
        }
    }

    /// Checks that `mfa` logs in over TCP with its password (retrying for
    /// up to 5 s).
    fn check_tcp(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut cmd = self.command("psql", false);
            cmd.args(["-X", "-q", "-A", "-t", "-w", "-d", &self.url("postgres")])
                .args(["-c", "SELECT 1"]);
            let out = run(cmd, COMMAND_TIMEOUT)?;
            if out.ok && out.text.trim() == "1" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "PostgreSQL started but `SELECT 1` over TCP failed: {}; server log: {}",
                    tail(&out.text),
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        tail(&fs::read_to_string(self.log()).unwrap_or_default())
    }
}

impl Drop for PgServer {
    /// Stops the server (immediate mode) and removes its directory; never
    /// panics.
    fn drop(&mut self) {
        self.stop_quietly();
        let _ = fs::remove_dir_all(&self.dir);
        release_watchdog(
            self.watchdog
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

/// Panics under CI=true, else prints "skipped: ...".
fn skip_or_panic(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("PostgreSQL is required in CI: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// The bin directory of the newest PostgreSQL installation: the highest
/// /usr/lib/postgresql/<version>/bin, else the directory of `pg_ctl` in
/// PATH (following symlinks), else `pg_config --bindir`.
fn find_bindir() -> Result<PathBuf, String> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINDIR.get_or_init(search_bindir).clone()
}

fn search_bindir() -> Result<PathBuf, String> {
    let complete = |dir: &Path| REQUIRED_BINS.iter().all(|b| dir.join(b).is_file());
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let pg_ctl = dir.join("pg_ctl");
        if !pg_ctl.is_file() {
            continue;
        }
        if let Some(real) = fs::canonicalize(&pg_ctl)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if complete(&real) {
                return Ok(real);
            }
        }
        if complete(&dir) {
            return Ok(dir);
        }
    }
    if let Ok(out) = run(
        {
            let mut cmd = Command::new("pg_config");
            cmd.arg("--bindir");
            cmd
        },
        Duration::from_secs(10),
    ) {
        let dir = PathBuf::from(out.text.trim());
        if out.ok && complete(&dir) {
            return Ok(dir);
        }
    }
    Err(format!(
        "PostgreSQL is not installed (no {} in /usr/lib/postgresql/*/bin or PATH)",
        REQUIRED_BINS.join(", ")
    ))
}
