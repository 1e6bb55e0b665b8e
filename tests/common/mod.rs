//! Shared integration-test harness: a real FreeRADIUS as the upstream,
//! radclient and eapol_test as the NAS, mfa-proxy running in-process.
#![allow(dead_code)]

pub mod provider;
pub mod web;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mfa_proxy::config::Config;
use mfa_proxy::io::Running;
use mfa_proxy::radius::dict::Dictionary;

pub const NAS_SECRET: &str = "nas-shared-secret-0123456789";
pub const UPSTREAM_SECRET: &str = "upstream-secret-0123456789";

/// Whether an external tool is installed. Under CI a missing tool fails the
/// test instead of skipping it.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required in CI but is not installed");
        }
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

#[path = "../support/ports.rs"]
// Also included by the other harness when a test uses both.
#[allow(clippy::duplicate_mod)]
mod ports;

/// A port on 127.0.0.1 free for TCP and UDP, outside the ephemeral range
/// (see `tests/support/ports.rs`).
pub fn free_port() -> u16 {
    ports::pick().expect("a free port")
}

/// A FreeRADIUS 3 server started from a copy of the system configuration,
/// with our own virtual servers, clients and users.
pub struct FreeRadius {
    child: Child,
    pub dir: tempfile::TempDir,
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    log: Arc<Mutex<String>>,
}

pub const USERS: &str = r#"
alice	Cleartext-Password := "alice-pass"
	Reply-Message := "Hello alice",
	Tunnel-Type := VLAN,
	Tunnel-Medium-Type := IEEE-802,
	Tunnel-Private-Group-Id := "42",
	Tunnel-Password := "tunnel-secret"

bob	Cleartext-Password := "bob-pass"

# NPS-style group decisions in Class, for the policy tests.
carol	Cleartext-Password := "carol-pass"
	Class := "grp:kiosk"

dave	Cleartext-Password := "dave-pass"
	Class := "grp:staff"

# Everyone else (the out-of-band tests' many users) has one password.
DEFAULT	Cleartext-Password := "shared-pass"
"#;

impl FreeRadius {
    /// Starts FreeRADIUS trusting 127.0.0.1 with `secret`.
    pub fn start(secret: &str) -> FreeRadius {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("raddb");
        let ok = Command::new("cp")
            .args(["-rL", "/etc/freeradius/3.0"])
            .arg(&conf)
            .status()
            .expect("cp")
            .success();
        assert!(ok, "copy /etc/freeradius/3.0");
        let logdir = dir.path().join("log");
        std::fs::create_dir_all(logdir.join("radacct")).expect("logdir");
        let radiusd = std::fs::read_to_string(conf.join("radiusd.conf")).expect("radiusd.conf");
        let radiusd: String = radiusd
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("user = ") || t.starts_with("group = ") {
                    String::new()
                } else if t.starts_with("raddbdir = ") {
                    format!("raddbdir = {}", conf.display())
                } else if t.starts_with("logdir = ") {
                    format!("logdir = {}", logdir.display())
                } else if t.starts_with("run_dir = ") {
                    format!("run_dir = {}", dir.path().display())
                } else if t.starts_with("auth = no") {
                    "auth = yes".to_owned()
                } else if t.starts_with("max_requests = ") {
                    "max_requests = 65536".to_owned()
                } else if t.starts_with("reject_delay = ") {
                    // NPS answers a wrong password at once. FreeRADIUS's
                    // default holds the reject for 1 s, which races the
                    // tests' upstream timeout (500 ms, one re-send): the
                    // proxy could give up just before the reject arrived.
                    "reject_delay = 0".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(conf.join("radiusd.conf"), radiusd).expect("write radiusd.conf");

        let (auth_port, acct_port) = (free_port(), free_port());
        for e in std::fs::read_dir(conf.join("sites-enabled")).expect("sites") {
            std::fs::remove_file(e.expect("entry").path()).expect("rm site");
        }
        std::fs::write(
            conf.join("sites-enabled/test"),
            format!(
                r#"
server default {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {auth_port}
}}
listen {{
	type = acct
	ipaddr = 127.0.0.1
	port = {acct_port}
}}
authorize {{
	preprocess
	chap
	mschap
	eap {{
		ok = return
	}}
	files
	pap
}}
authenticate {{
	Auth-Type PAP {{
		pap
	}}
	Auth-Type CHAP {{
		chap
	}}
	Auth-Type MS-CHAP {{
		mschap
	}}
	eap
}}
preacct {{
	preprocess
}}
accounting {{
	detail
	ok
}}
post-auth {{
	# The inner identity of PEAP, kept in the session by the inner tunnel,
	# goes out in the final Access-Accept (as NPS does), as the default
	# site does it: the outer User-Name the EAP module put in the reply
	# makes way for it.
	if (session-state:User-Name && reply:User-Name && request:User-Name && (reply:User-Name == request:User-Name)) {{
		update reply {{
			&User-Name !* ANY
		}}
	}}
	update {{
		&reply: += &session-state:
	}}
	Post-Auth-Type REJECT {{
		attr_filter.access_reject
	}}
}}
}}
server inner-tunnel {{
authorize {{
	chap
	mschap
	eap {{
		ok = return
	}}
	files
	pap
}}
authenticate {{
	Auth-Type PAP {{
		pap
	}}
	Auth-Type CHAP {{
		chap
	}}
	Auth-Type MS-CHAP {{
		mschap
	}}
	eap
}}
post-auth {{
	update outer.session-state {{
		User-Name := &User-Name
	}}
}}
}}
"#
            ),
        )
        .expect("write site");
        std::fs::write(
            conf.join("clients.conf"),
            format!("client localhost {{\n\tipaddr = 127.0.0.1\n\tsecret = {secret}\n\trequire_message_authenticator = no\n}}\n"),
        )
        .expect("clients.conf");
        std::fs::write(conf.join("mods-config/files/authorize"), USERS).expect("users");

        let mut child = Command::new("freeradius")
            .args(["-f", "-l", "stdout", "-d"])
            .arg(&conf)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start freeradius");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("Ready to process requests") {
                        let _ = tx.send(());
                    }
                    let mut l = log.lock().expect("log");
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut fr = FreeRadius {
            child,
            dir,
            auth: SocketAddr::from(([127, 0, 0, 1], auth_port)),
            acct: SocketAddr::from(([127, 0, 0, 1], acct_port)),
            log,
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = fr.child.kill();
            panic!("FreeRADIUS did not start:\n{}", fr.log());
        }
        fr
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// How many "Login OK" lines the server has logged for `user`.
    pub fn logins_ok(&self, user: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Login OK") && l.contains(&format!("[{user}")))
            .count()
    }

    /// How many authentication requests the server has logged for `user`.
    pub fn auth_attempts(&self, user: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                (l.contains("Login OK") || l.contains("Login incorrect"))
                    && l.contains(&format!("[{user}"))
            })
            .count()
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A proxy configuration with one NAS client on 127.0.0.1 and the given
/// upstreams (auth, acct) sharing [`UPSTREAM_SECRET`].
pub fn proxy_config(upstreams: &[(SocketAddr, SocketAddr)], extra: &str) -> Config {
    // A plain proxy unless the test configures the second factor.
    let extra = if extra.contains("[mfa]") {
        extra.to_owned()
    } else {
        format!("[mfa]\nenabled = false\n{extra}")
    };
    let mut t = format!(
        "[server]\nname = \"test\"\nauth_listen = [\"127.0.0.1:0\"]\nacct_listen = [\"127.0.0.1:0\"]\n{extra}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{NAS_SECRET}\"\n"
    );
    for (i, (auth, acct)) in upstreams.iter().enumerate() {
        t.push_str(&format!(
            "[[upstream]]\nname = \"up{i}\"\naddress = \"{auth}\"\nacct_address = \"{acct}\"\nsecret = \"{UPSTREAM_SECRET}\"\n\
             timeout = \"500ms\"\nretries = 1\nrequire_message_authenticator = false\nhealth_check = \"none\"\n"
        ));
    }
    Config::from_toml(&t, Path::new("test.toml")).expect("test config is valid")
}

pub fn start_proxy(config: &Config) -> Running {
    Running::spawn(config, Arc::new(Dictionary::builtin()), None).expect("start proxy")
}

/// A proxy with the second factor, on `store`.
pub fn start_mfa_proxy(config: &Config, store: &Arc<mfa_proxy::store::SqliteStore>) -> Running {
    Running::spawn(config, Arc::new(Dictionary::builtin()), Some(store.clone()))
        .expect("start proxy")
}

/// Runs radclient against `to`, feeding `input` (attribute lines), and
/// returns its output.
pub fn radclient(to: SocketAddr, kind: &str, secret: &str, input: &str, args: &[&str]) -> Output {
    let mut child = Command::new("radclient")
        .args(args)
        .arg(to.to_string())
        .arg(kind)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run radclient");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("radclient output")
}

/// A PAP Access-Request through radclient (signed, with `State` when
/// answering a challenge); returns radclient's output.
pub fn pap(
    to: SocketAddr,
    user: &str,
    password: &str,
    state: Option<&str>,
    args: &[&str],
) -> String {
    let mut input = format!(
        "User-Name = {user}\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    );
    if let Some(s) = state {
        input.push_str(&format!("State = {s}\n"));
    }
    text(&radclient(to, "auth", NAS_SECRET, &input, args))
}

/// The State of the Access-Challenge in radclient's output.
pub fn state_from(out: &str) -> String {
    assert!(out.contains("Received Access-Challenge"), "{out}");
    out.lines()
        .skip_while(|l| !l.contains("Received"))
        .find_map(|l| l.trim().strip_prefix("State = ").map(str::to_owned))
        .expect("State in the challenge")
}

/// The TOTP seed in the `otpauth://` URI that `totp enroll` printed in `out`.
pub fn seed_from_enroll(out: &str) -> Vec<u8> {
    let uri = out
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("otpauth URI printed");
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("secret in the URI");
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret).expect("base32")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `mfa-proxy` binary with `args`, then `--config <dir>/proxy.toml`,
/// feeding `stdin`.
pub fn run_bin(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(args)
        .arg("--config")
        .arg(dir.join("proxy.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mfa-proxy");
    if let Some(s) = stdin {
        c.stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    c.wait_with_output().expect("wait for mfa-proxy")
}

/// A configuration and an initialised store in a temporary directory, for
/// running the administrator's verbs through the binary.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// The shipped `proxy.toml`.
    pub fn shipped() -> Site {
        let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
        Site::with_config(&shipped)
    }

    /// `config` as `proxy.toml`.
    pub fn with_config(config: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("proxy.toml"), config).expect("write config");
        Site::init(dir)
    }

    /// `dir`, which holds `proxy.toml` and what it names, with its store.
    pub fn init(dir: tempfile::TempDir) -> Site {
        let o = run_bin(dir.path(), &["init"], None);
        assert!(o.status.success(), "init: {}", text(&o));
        Site { dir }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_bin(self.dir.path(), args, stdin)
    }

    /// Runs `args`, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, None);
        assert!(o.status.success(), "{args:?} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// The shipped `proxy.toml` written into `dir` with its RADIUS and HTTP
/// listeners on free ports and each `(from, to)` replaced; returns the
/// RADIUS address and the HTTP port.
#[allow(dead_code)]
pub fn shipped_config_in(dir: &Path, replace: &[(&str, &str)]) -> (SocketAddr, u16) {
    let (port, http) = (free_port(), free_port());
    let mut conf = std::fs::read_to_string(workspace().join("proxy.toml"))
        .expect("read")
        .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{port}\"]"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"));
    for (from, to) in replace {
        assert!(conf.contains(from), "proxy.toml has no {from:?}");
        conf = conf.replace(from, to);
    }
    std::fs::write(dir.join("proxy.toml"), conf).expect("write");
    (SocketAddr::from(([127, 0, 0, 1], port)), http)
}
