//! Out-of-band verification end to end: radclient (the NAS, retransmitting
//! every second) → mfa-proxy → FreeRADIUS (the first factor), with a
//! provider simulator that receives the signed webhook and plays the phone
//! by script, answering on the callback URL.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mfa_proxy::engine::{Counter, sign, signature_ok};
use mfa_proxy::mfa::ResultCode;
use mfa_proxy::radius::dict::Dictionary;
use mfa_proxy::store::{Method, SeedKey, SqliteStore, Store, User};

const KEY: &str = "provider-key-for-tests-0123456789";

/// What the simulated phone does for a user.
#[derive(Clone, Copy)]
enum Script {
    /// Answer `result` on the callback after this long.
    After(Duration, &'static str),
    /// Refuse the delivery (HTTP 500).
    Fail,
}

/// A provider: takes deliveries at POST /verify, checks their signature,
/// and answers each by its user's script.
struct ProviderSim {
    addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl ProviderSim {
    fn start(scripts: HashMap<&'static str, Script>) -> ProviderSim {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let seen = deliveries.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some((headers, body)) = read_request(&mut conn) else {
                    continue;
                };
                let sig = headers.get("x-mfa-signature").cloned().unwrap_or_default();
                if !signature_ok(KEY.as_bytes(), &body, &sig) {
                    let _ =
                        conn.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
                    continue;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                let user = v["user"].as_str().unwrap_or_default().to_owned();
                seen.lock().expect("lock").push(v.clone());
                match scripts.get(user.as_str()).copied() {
                    Some(Script::Fail) => {
                        let _ = conn.write_all(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n");
                    }
                    Some(Script::After(d, result)) => {
                        let _ =
                            conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                        let url = v["callback_url"].as_str().expect("callback_url").to_owned();
                        std::thread::spawn(move || {
                            std::thread::sleep(d);
                            let body = format!(r#"{{"result":"{result}"}}"#);
                            post(&url, &body, Some(&sign(KEY.as_bytes(), body.as_bytes())));
                        });
                    }
                    None => {
                        let _ =
                            conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
                    }
                }
            }
        });
        ProviderSim { addr, deliveries }
    }

    fn delivered(&self) -> Vec<serde_json::Value> {
        self.deliveries.lock().expect("lock").clone()
    }
}

fn read_request(conn: &mut TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let n: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// A minimal HTTP/1.1 request; returns the status code and body.
fn http(method: &str, url: &str, body: &str, signature: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = TcpStream::connect(host).expect("connect");
    let sig = signature
        .map(|x| format!("x-mfa-signature: {x}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{sig}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(url: &str, body: &str, signature: Option<&str>) -> u16 {
    http("POST", url, body, signature).0
}

fn login(to: SocketAddr, user: &str, password: &str, args: &[&str]) -> String {
    text(&radclient(
        to,
        "auth",
        NAS_SECRET,
        &format!(
            "User-Name = {user}\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
        ),
        args,
    ))
}

#[test]
fn push_held_through_retransmissions_busy_for_a_new_login_and_callbacks_checked() {
    if !(have("freeradius") && have("radclient")) {
        return;
    }
    let fr = FreeRadius::start(UPSTREAM_SECRET);
    let sim = ProviderSim::start(HashMap::from([
        ("alice", Script::After(Duration::from_secs(5), "approved")),
        ("bob", Script::Fail),
    ]));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("mfa.db"), SeedKey::from_bytes(&[7; 32]))
            .expect("store"),
    );
    for name in ["alice", "bob"] {
        store
            .add_user(&User {
                name: name.into(),
                email: None,
                phone: Some("+4930123456".into()),
                method: Method::Push,
                password_hash: None,
                created_at: 0,
                blocked_until: None,
                pin_hash: None,
            })
            .expect("user");
    }
    let http_port = free_port();
    let config = proxy_config(
        &[(fr.auth, fr.acct)],
        &format!(
            "http_listen = \"127.0.0.1:{http_port}\"\npublic_url = \"http://127.0.0.1:{http_port}\"\n\
             [mfa]\nreject_delay = \"100ms\"\npush_timeout = \"20s\"\nfallback_oath = false\n\
             [[provider]]\nname = \"sim\"\ntype = \"webhook\"\nmethods = [\"push\"]\n\
             url = \"http://{}/verify\"\nkey = \"{KEY}\"\ntimeout = \"2s\"\nretries = 1\n",
            sim.addr
        ),
    );
    let proxy = mfa_proxy::io::Running::spawn(
        &config,
        Arc::new(Dictionary::builtin()),
        Some(store.clone()),
    )
    .expect("proxy");
    let to = proxy.listen_addrs[0];
    let base = format!("http://{}", proxy.http_addr.expect("http"));
    assert_eq!(http("GET", &format!("{base}/healthz"), "", None).0, 200);

    // Alice's NAS retransmits every second while the push takes 5 s.
    let started = Instant::now();
    let nas = std::thread::spawn(move || {
        login(to, "alice", "alice-pass", &["-x", "-t", "1", "-r", "12"])
    });
    // Meanwhile a genuinely new login for alice: refused at once.
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let busy = login(to, "alice", "alice-pass", &["-x", "-t", "3", "-r", "1"]);
    assert!(busy.contains("Received Access-Reject"), "{busy}");
    assert!(busy.contains("already in progress"), "{busy}");
    assert!(t.elapsed() < Duration::from_secs(2), "BUSY is not delayed");

    let out = nas.join().expect("radclient");
    assert!(
        out.contains("Received Access-Accept"),
        "{out}\n{}",
        fr.log()
    );
    assert!(
        out.contains("tunnel-secret"),
        "the upstream's attributes: {out}"
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    let pushes: Vec<_> = sim
        .delivered()
        .into_iter()
        .filter(|d| d["user"] == "alice")
        .collect();
    assert_eq!(
        pushes.len(),
        1,
        "exactly one push for all the retransmissions"
    );
    let stats = proxy.stats();
    assert!(stats.get(Counter::DropDuplicateInFlight) >= 3, "{stats}");
    assert_eq!(stats.get(Counter::MfaBusy), 1, "{stats}");
    assert_eq!(
        fr.logins_ok("alice"),
        2,
        "two first factors: the held login and the refused one"
    );

    // The callback is single use; a forged one is refused.
    let url = pushes[0]["callback_url"].as_str().expect("url").to_owned();
    let body = r#"{"result":"approved"}"#;
    assert_eq!(
        post(&url, body, Some(&sign(KEY.as_bytes(), body.as_bytes()))),
        404
    );

    // Bob's provider refuses: fail closed.
    let out = login(to, "bob", "bob-pass", &["-x", "-t", "10", "-r", "1"]);
    assert!(out.contains("Received Access-Reject"), "{out}");

    // The NAS gave up early and tries again: in without a new push, once.
    let out = login(to, "alice", "alice-pass", &["-x", "-t", "3", "-r", "1"]);
    assert!(out.contains("Received Access-Accept"), "busy_grace: {out}");
    assert_eq!(
        sim.delivered()
            .iter()
            .filter(|d| d["user"] == "alice")
            .count(),
        1
    );

    // Grace used up: a new push. While it is pending, a forged or malformed
    // callback changes nothing.
    let nas =
        std::thread::spawn(move || login(to, "alice", "alice-pass", &["-x", "-t", "2", "-r", "6"]));
    let deadline = Instant::now() + Duration::from_secs(4);
    let url = loop {
        let d: Vec<_> = sim
            .delivered()
            .into_iter()
            .filter(|d| d["user"] == "alice")
            .collect();
        if d.len() >= 2 {
            break d[1]["callback_url"].as_str().expect("url").to_owned();
        }
        assert!(Instant::now() < deadline, "no second push delivered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(post(&url, body, Some("sha256=0011")), 401);
    assert_eq!(post(&url, body, None), 401);
    let bad = r#"{"result":"perhaps"}"#;
    assert_eq!(
        post(&url, bad, Some(&sign(KEY.as_bytes(), bad.as_bytes()))),
        400
    );
    let out = nas.join().expect("radclient");
    assert!(out.contains("Received Access-Accept"), "{out}");

    std::thread::sleep(Duration::from_millis(300));
    let audit = store.audit(None, None).expect("audit");
    let results: Vec<(String, ResultCode, bool)> = audit
        .iter()
        .map(|a| (a.user.clone(), a.result, a.accepted))
        .collect();
    assert!(
        results.contains(&(
            "alice".into(),
            ResultCode::SuccessPhoneAppAuthenticated,
            true
        )),
        "{results:?}"
    );
    assert!(
        results.contains(&("alice".into(), ResultCode::FailedPhoneBusy, false)),
        "{results:?}"
    );
    assert!(
        results.contains(&(
            "bob".into(),
            ResultCode::FailedPhoneAppNotificationFailed,
            false
        )),
        "{results:?}"
    );
    assert!(
        results.contains(&("alice".into(), ResultCode::SuccessUsedCache, true)),
        "{results:?}"
    );
    assert_eq!(results.len(), 5, "one record per login: {results:?}");

    let (status, metrics) = http("GET", &format!("{base}/metrics"), "", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mfa_proxy_logins_total{result=\"SUCCESS_PHONE_APP_AUTHENTICATED\",decision=\"accept\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_pending_verifications 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_drops_total{side=\"nas\",reason=\"duplicate_in_flight\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mfa_proxy_upstream_rtt_seconds_count{upstream=\"up0\"}"),
        "{metrics}"
    );
}
