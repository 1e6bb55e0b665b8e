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
    // SIGHUP (systemctl reload) applies the file again and never stops it.
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
            && log.contains("configuration reloaded"),
        "{log}"
    );
    assert!(
        log.contains("trial secret") && !log.contains("\"testing123\"\""),
        "{log}"
    );
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let o = bin().arg("--version").output().expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.trim_end();
    let want = format!("mfa-proxy {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .strip_prefix(&want)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not \"{want}COMMIT)\": {line:?}"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        commit == "unknown"
            || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            || std::env::var_os("MFA_PROXY_COMMIT").is_some(),
        "not a commit: {line:?}"
    );
}

/// Splits an example command line as a shell would: words, "quoted" and
/// 'quoted' strings; from the last `mfa-proxy` on.
fn example_args(line: &str) -> Vec<String> {
    let line = &line[line.rfind("mfa-proxy ").expect("an mfa-proxy command")..];
    let (mut args, mut word, mut quote, mut in_word) = (vec![], String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => (quote, in_word) = (Some(c), true),
            (None, c) if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quotes: {line}");
    if in_word {
        args.push(word);
    }
    args
}

/// Every verb, down to the sub-verbs, says what it does (`--help` shows its
/// about text) and gives an example that names the verb and parses.
#[test]
fn every_verb_has_help_with_an_example() {
    use clap::{CommandFactory, Parser};
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.push((path.clone(), about));
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            path.push(sub.get_name().to_owned());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut verbs = Vec::new();
    walk(&mfa_proxy::cli::Cli::command(), &mut vec![], &mut verbs);
    assert!(verbs.len() > 20, "{} verbs", verbs.len());
    for (path, about) in verbs {
        let name = path.join(" ");
        assert!(!about.trim().is_empty(), "`{name}` has no about text");
        let o = bin().args(&path).arg("--help").output().expect("run");
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "`{name} --help`: {}", text(&o));
        assert!(help.contains(about.trim()), "`{name} --help`:\n{help}");
        let examples: Vec<&str> = help
            .split_once("\nExample:\n")
            .or_else(|| help.split_once("\nExamples:\n"))
            .unwrap_or_else(|| panic!("`{name} --help` has no Example: block:\n{help}"))
            .1
            .lines()
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert!(!examples.is_empty(), "`{name}`: an empty Example: block");
        for example in examples {
            let args = example_args(example);
            assert!(
                args.get(1..=path.len())
                    .is_some_and(|a| a == path.as_slice()),
                "`{name}`: the example does not run `mfa-proxy {name}`: {example}"
            );
            if let Err(e) = mfa_proxy::cli::Cli::try_parse_from(&args) {
                panic!("`{name}`: the example does not parse: {example}\n{e}");
            }
        }
    }
}
