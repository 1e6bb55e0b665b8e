//! What the test harnesses for a private server share (PostgreSQL in
//! `pg_server.rs`, OpenLDAP in `slapd.rs`): the user a server runs as when
//! the tests run as root, a private directory under /tmp, the watchdog that
//! stops the server and removes the directory however the test process
//! ends, free ports, and commands run with a timeout.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Stops the server and removes its directory once the test process has
/// gone: its stdin is a pipe whose only writer is this process, so `cat`
/// sees end of file when the process exits, however it exits. Arguments:
/// the directory, the server's pid file within it, the signal that stops
/// the server, and `group` when the pid is a process group's leader whose
/// whole group is to be stopped (chromedriver and the browsers it starts).
/// A pid that is not a number above 1 without leading zeros is ignored:
/// `kill -TERM -1` would signal every process on the machine.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP TERM QUIT PIPE
cat >/dev/null
d="$1"
f="$d/$2"
if [ -f "$f" ]; then
  pid=$(head -n 1 "$f" 2>/dev/null)
  case "$pid" in ''|0*|1|*[!0-9]*) pid= ;; esac
  t="$pid"
  if [ -n "$pid" ] && [ "$4" = group ]; then t="-$pid"; fi
  if [ -n "$pid" ] && kill "-$3" "$t" 2>/dev/null; then
    i=0
    while kill -0 "$t" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$t" 2>/dev/null
  fi
fi
rm -rf "$d"
"#;

/// The (uid, gid) of `user`, when this process is root (servers refuse to
/// run as root); `None` otherwise.
pub fn run_as(user: &str) -> Result<Option<(u32, u32)>, String> {
    let uid = match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid(),
        Err(_) => id(&["-u"]).ok_or("cannot tell the current user (id -u)")?,
    };
    if uid != 0 {
        return Ok(None);
    }
    match (id(&["-u", user]), id(&["-g", user])) {
        (Some(uid), Some(gid)) if uid != 0 => Ok(Some((uid, gid))),
        _ => Err(format!(
            "running as root and there is no `{user}` user to run the server as"
        )),
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let mut cmd = Command::new("id");
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(10)).ok()?;
    if !out.ok {
        return None;
    }
    out.text.trim().parse().ok()
}

/// A new private directory `/tmp/{prefix}-PID-RANDOM` (mode 0700), with the
/// subdirectories `subdirs`, all owned by `run_as` when given.
pub fn make_dir(
    prefix: &str,
    run_as: Option<(u32, u32)>,
    subdirs: &[&str],
) -> Result<PathBuf, String> {
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o700);
    for _ in 0..20 {
        let dir = PathBuf::from(format!(
            "/tmp/{prefix}-{}-{}",
            std::process::id(),
            random_hex(6)
        ));
        match builder.create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
        let made = std::iter::once(Ok(dir.clone()))
            .chain(subdirs.iter().map(|s| {
                let sub = dir.join(s);
                builder.create(&sub).map(|()| sub)
            }))
            .try_for_each(|path| match (path, run_as) {
                (Ok(p), Some((uid, gid))) => std::os::unix::fs::chown(&p, Some(uid), Some(gid)),
                (Ok(_), None) => Ok(()),
                (Err(e), _) => Err(e),
            });
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(format!("cannot prepare {}: {e}", dir.display()));
        }
        return Ok(dir);
    }
    Err("cannot create a temporary directory under /tmp".to_string())
}

/// Starts the watchdog (named `name` in the process list) that stops the
/// server whose pid is in `dir/pid_file` with `signal`, and removes `dir`,
/// when this process exits. `None` (no watchdog) if `sh` cannot be run.
pub fn spawn_watchdog(name: &str, dir: &Path, pid_file: &str, signal: &str) -> Option<Child> {
    watchdog(name, dir, pid_file, signal, "")
}

/// Like [`spawn_watchdog`], for a server started in a process group of its
/// own (`process_group(0)`) that starts processes of its own in it: the
/// whole group gets `signal`.
pub fn spawn_group_watchdog(name: &str, dir: &Path, pid_file: &str, signal: &str) -> Option<Child> {
    watchdog(name, dir, pid_file, signal, "group")
}

fn watchdog(name: &str, dir: &Path, pid_file: &str, signal: &str, mode: &str) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg(name)
        .arg(dir)
        .arg(pid_file)
        .arg(signal)
        .arg(mode)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

/// Lets a watchdog go once its server is stopped and its directory
/// removed (so that it finds no pid file): closes its stdin and waits up
/// to 2 s for it to exit.
pub fn release_watchdog(watchdog: Option<Child>) {
    if let Some(mut child) = watchdog {
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                _ => break,
            }
        }
    }
}

#[path = "ports.rs"]
// Also included by the other harness when a test uses both.
#[allow(clippy::duplicate_mod)]
mod ports;

/// A free port on 127.0.0.1 outside the ephemeral range (see `ports.rs`).
pub fn free_port() -> Result<u16, String> {
    ports::pick().map_err(|e| format!("cannot find a free port: {e}"))
}

/// `n` random bytes as hex, from /dev/urandom (or std's random hasher keys).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let from_urandom = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_urandom {
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last lines of a log, on one line.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(12);
    let joined = lines[start..].join(" / ");
    if joined.is_empty() {
        "(empty)".to_string()
    } else {
        joined
    }
}

/// A finished command: success, exit code, and stdout then stderr.
pub struct Output {
    pub ok: bool,
    pub code: Option<i32>,
    pub text: String,
}

/// Runs a command with stdin closed, killing it after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let program = display(cmd.get_program());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let readers: Vec<Box<dyn Read + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    let streams = readers.len();
    for (index, mut reader) in readers.into_iter().enumerate() {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = reader.read_to_end(&mut buf);
            let _ = tx.send((index, buf));
        });
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} timed out after {timeout:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    };
    let mut parts = vec![Vec::new(); streams];
    for _ in 0..streams {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok((index, buf)) => parts[index] = buf,
            Err(_) => break,
        }
    }
    Ok(Output {
        ok: status.success(),
        code: status.code(),
        text: parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(""),
    })
}

fn display(program: &OsStr) -> String {
    Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy()
        .into_owned()
}
