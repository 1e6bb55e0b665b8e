//! Reload without a restart: the real `mfa-proxy serve` in front of
//! FreeRADIUS, with the second factor on (its store created on the first
//! run; every login asks it about the user, goes through the policy, and is
//! recorded), under concurrent radclient streams, gets ten SIGHUPs (one
//! with a broken file); no login may be lost or rejected, and /metrics must
//! count nine reloads applied. And, in process, the
//! listeners follow a reload, and an address that cannot be bound keeps the
//! old ones.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mfa_proxy::config::Config;
use mfa_proxy::radius::dict::Dictionary;

/// Requests per radclient run, and how many run at once in each stream.
const PER_RUN: usize = 200;
const PARALLEL: &str = "16";
const STREAMS: usize = 4;

/// What the proxy's file says, one knob per kind of change.
#[derive(Clone, Default)]
struct Knobs {
    spare_client: bool,
    timeout: Option<&'static str>,
    proxy: &'static str,
    acct_port: Option<u16>,
    mfa: &'static str,
    lockout: &'static str,
    client_extra: &'static str,
    broken: bool,
}

fn proxy_toml(auth: u16, http: u16, upstream: SocketAddr, k: &Knobs) -> String {
    let acct = k
        .acct_port
        .map(|p| format!("acct_listen = [\"127.0.0.1:{p}\"]\n"))
        .unwrap_or_default();
    let spare = if k.spare_client {
        "[[client]]\nname = \"spare\"\naddress = \"10.9.0.0/16\"\nsecret = \"spare-secret-0123456789\"\n"
    } else {
        ""
    };
    let retries = if k.broken { "\"many\"" } else { "2" };
    format!(
        "[server]\nname = \"reload-test\"\nauth_listen = [\"127.0.0.1:{auth}\"]\n{acct}\
         http_listen = \"127.0.0.1:{http}\"\n\
         [mfa]\nenabled = true\nunenrolled = \"accept\"\n{mfa}\n[lockout]\n{lockout}\n[proxy]\n{proxy}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{NAS_SECRET}\"\n{client_extra}\n{spare}\
         [[upstream]]\nname = \"fr\"\naddress = \"{upstream}\"\nsecret = \"{UPSTREAM_SECRET}\"\n\
         timeout = \"{timeout}\"\nretries = {retries}\nrequire_message_authenticator = false\nhealth_check = \"none\"\n",
        mfa = k.mfa,
        lockout = k.lockout,
        proxy = k.proxy,
        client_extra = k.client_extra,
        timeout = k.timeout.unwrap_or("2s"),
    )
}

/// The value of the sample `name` (with its labels) in a /metrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `GET /metrics`; `None` until the proxy answers 200.
fn metrics(http_port: u16) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// What the radclient runs of the streams added up to.
#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    sent: usize,
    accepted: usize,
    rejected: usize,
    lost: usize,
    odd: Vec<String>,
}

/// A count in radclient's `-s` summary (`\tAccepted      : 200`).
fn summary(out: &str, what: &str) -> Option<usize> {
    out.lines()
        .find(|l| l.trim_start().starts_with(what))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|n| n.trim().parse().ok())
}

fn stream(to: SocketAddr, file: &Path, stop: &AtomicBool, tally: &Mutex<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let o = Command::new("radclient")
            .args(["-s", "-r", "1", "-t", "5", "-p", PARALLEL, "-f"])
            .arg(file)
            .arg(to.to_string())
            .arg("auth")
            .arg(NAS_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run radclient");
        let out = text(&o);
        let mut t = tally.lock().expect("tally");
        t.runs += 1;
        t.sent += PER_RUN;
        match (
            summary(&out, "Accepted"),
            summary(&out, "Rejected"),
            summary(&out, "Lost"),
        ) {
            (Some(a), Some(r), Some(l)) => {
                t.accepted += a;
                t.rejected += r;
                t.lost += l;
            }
            _ => t.odd.push(out),
        }
    }
}

#[test]
fn ten_sighups_under_load_lose_no_request() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("proxy.toml");
    let (auth, http_port, acct) = (free_port(), free_port(), free_port());
    let write =
        |k: &Knobs| std::fs::write(&conf, proxy_toml(auth, http_port, fr.auth, k)).expect("write");
    write(&Knobs::default());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
        .args(["serve", "--config"])
        .arg(&conf)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = serve.stderr.take().expect("stderr");
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .expect("log")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics(http_port).is_none() {
        assert!(
            Instant::now() < deadline,
            "the proxy did not start:\n{}",
            log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = metrics(http_port).expect("metrics");
    assert_eq!(sample(&before, "mfa_proxy_config_generation"), Some(1.0));
    assert_eq!(
        sample(&before, "mfa_proxy_config_last_reload_success"),
        Some(1.0)
    );

    // The load: four streams of radclient runs, 16 requests in flight each.
    let requests = std::iter::repeat_n(
        "User-Name = alice\nUser-Password = alice-pass\nMessage-Authenticator = 0x00\n",
        PER_RUN,
    )
    .collect::<Vec<_>>()
    .join("\n");
    let file = dir.path().join("requests.txt");
    std::fs::write(&file, requests).expect("write requests");
    let to = SocketAddr::from(([127, 0, 0, 1], auth));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (file, stop, tally) = (file.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || stream(to, &file, &stop, &tally))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Ten SIGHUPs, each a different kind of change; the fourth file is
    // broken. Each is waited for (signals sent at once would merge).
    let spare = Knobs {
        spare_client: true,
        ..Knobs::default()
    };
    let slower = Knobs {
        timeout: Some("3s"),
        ..spare.clone()
    };
    let dedup = Knobs {
        proxy: "dedup_window = \"20s\"",
        ..slower.clone()
    };
    let broken = Knobs {
        broken: true,
        ..dedup.clone()
    };
    let acct_added = Knobs {
        spare_client: false,
        acct_port: Some(acct),
        ..dedup.clone()
    };
    let texts = Knobs {
        mfa: "prompt = \"Your code, please\"",
        ..acct_added.clone()
    };
    let lockout = Knobs {
        lockout: "denials = 3",
        ..texts.clone()
    };
    let round_robin = Knobs {
        proxy: "dedup_window = \"20s\"\nselection = \"round-robin\"",
        ..lockout.clone()
    };
    let client_changed = Knobs {
        client_extra: "fail_mode = \"fail_open\"",
        ..round_robin.clone()
    };
    let back = Knobs {
        acct_port: None,
        timeout: None,
        ..client_changed.clone()
    };
    let steps = [
        spare,
        slower,
        dedup,
        broken,
        acct_added,
        texts,
        lockout,
        round_robin,
        client_changed,
        back,
    ];
    let mut generation = 1.0;
    for (i, k) in steps.iter().enumerate() {
        write(k);
        let ok = Command::new("kill")
            .args(["-HUP", &serve.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "SIGHUP {i}");
        let wanted = if k.broken {
            generation
        } else {
            generation + 1.0
        };
        let success = if k.broken { 0.0 } else { 1.0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = metrics(http_port).unwrap_or_default();
            if sample(&m, "mfa_proxy_config_generation") == Some(wanted)
                && sample(&m, "mfa_proxy_config_last_reload_success") == Some(success)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SIGHUP {i} was not applied:\n{m}\n{}",
                log.lock().expect("log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        generation = wanted;
        if i > 0 && k.acct_port.is_some() && steps[i - 1].acct_port.is_none() {
            // The accounting listener a reload added answers.
            let o = radclient(
                SocketAddr::from(([127, 0, 0, 1], acct)),
                "status",
                NAS_SECRET,
                "Message-Authenticator = 0x00\n",
                &["-x", "-r", "1", "-t", "3"],
            );
            assert!(
                text(&o).contains("Received Accounting-Response"),
                "{}",
                text(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    for s in streams {
        s.join().expect("stream");
    }

    let m = metrics(http_port).expect("metrics");
    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .expect("kill");
    let _ = serve.wait();
    let _ = reader.join();
    let log = log.lock().expect("log").clone();
    let t = tally.lock().expect("tally");
    eprintln!(
        "reload under load: {} radclient runs, {} requests sent, {} accepted, {} rejected, {} lost",
        t.runs, t.sent, t.accepted, t.rejected, t.lost
    );
    assert!(
        t.odd.is_empty(),
        "radclient runs without a summary: {:?}",
        t.odd
    );
    assert_eq!((t.accepted, t.rejected, t.lost), (t.sent, 0, 0), "{log}");
    assert!(
        t.runs >= STREAMS * 2,
        "the load ran through the reloads: {t:?}"
    );
    assert_eq!(sample(&m, "mfa_proxy_config_generation"), Some(10.0), "{m}");
    assert_eq!(
        sample(&m, "mfa_proxy_config_last_reload_success"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "mfa_proxy_events_total{event=\"replies_accept\"}"),
        Some(t.sent as f64),
        "every request answered by the proxy: {m}"
    );
    let dropped: f64 = m
        .lines()
        .filter(|l| l.starts_with("mfa_proxy_drops_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dropped, 0.0, "{m}");
    assert!(
        log.contains("SIGHUP: the configuration is not valid, nothing changed")
            && log.contains("invalid type: string \"many\""),
        "the broken file is refused with its reason:\n{log}"
    );
    assert_eq!(log.matches("configuration reloaded").count(), 9, "{log}");
    assert!(log.contains("reload: [[client]] \"spare\" added"), "{log}");
    assert!(
        log.contains("reload: accounting listener 127.0.0.1:"),
        "{log}"
    );
    assert!(
        !log.contains(NAS_SECRET) && !log.contains(UPSTREAM_SECRET),
        "secrets in the log"
    );
}

fn config(auth: &[u16], extra: &str, fr: SocketAddr) -> Config {
    let listen: Vec<String> = auth.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let t = format!(
        "[server]\nauth_listen = [{}]\n[mfa]\nenabled = false\n{extra}\n\
         [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{NAS_SECRET}\"\n\
         [[upstream]]\nname = \"fr\"\naddress = \"{fr}\"\nsecret = \"{UPSTREAM_SECRET}\"\n\
         timeout = \"500ms\"\nretries = 1\nrequire_message_authenticator = false\nhealth_check = \"none\"\n",
        listen.join(", ")
    );
    Config::from_toml(&t, Path::new("test.toml")).expect("valid")
}

fn accepted_at(port: u16) -> bool {
    pap(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "alice",
        "alice-pass",
        None,
        &["-x", "-r", "1", "-t", "2"],
    )
    .contains("Received Access-Accept")
}

#[test]
fn listeners_follow_a_reload_and_an_address_taken_keeps_the_old_ones() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let (a, b, c) = (free_port(), free_port(), free_port());
    let dict = || Arc::new(Dictionary::builtin());
    let proxy = start_proxy(&config(&[a], "", fr.auth));
    assert!(accepted_at(a));
    // Moved from a to b: b answers, a is closed.
    let st = proxy.reload(&config(&[b], "", fr.auth), dict());
    assert_eq!((st.generation, st.last_success), (2, true));
    assert!(accepted_at(b));
    assert!(!accepted_at(a), "the old listener is closed");
    // c is taken: the listeners stay (b), the rest is applied.
    let taken = UdpSocket::bind(("127.0.0.1", c)).expect("take c");
    let st = proxy.reload(
        &config(&[c], "[proxy]\ndedup_window = \"10s\"", fr.auth),
        dict(),
    );
    assert_eq!((st.generation, st.last_success), (3, false));
    assert!(accepted_at(b), "the old listener still serves");
    // Once c is free, the next reload moves there (compared with what is in
    // force, b, not with the file that failed).
    drop(taken);
    let st = proxy.reload(
        &config(&[c], "[proxy]\ndedup_window = \"10s\"", fr.auth),
        dict(),
    );
    assert_eq!((st.generation, st.last_success), (4, true));
    assert!(accepted_at(c));
    // [groups] naming an attribute of a dictionary given with the new file
    // (which needs a restart): refused, or group policies would silently
    // stop matching.
    let vendor = Dictionary::parse_str(
        "VENDOR Example 99999\nBEGIN-VENDOR Example\nATTRIBUTE Example-Group 7 string\nEND-VENDOR Example\n",
    )
    .expect("dictionary");
    let st = proxy.reload(
        &config(
            &[c],
            "[groups]\nfrom_attribute = \"Example-Group\"",
            fr.auth,
        ),
        Arc::new(vendor),
    );
    assert_eq!((st.generation, st.last_success), (4, false));
    assert!(accepted_at(c));
    let s = proxy.stats();
    assert_eq!(s.get(mfa_proxy::engine::Counter::RepliesAccept), 5);
}
