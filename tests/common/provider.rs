//! A provider simulator (the webhook side of push, call and SMS: it checks
//! each delivery's signature and plays the phone by script, answering on the
//! callback URL); and the SMTP sink of `tests/support/smtp_sink.rs` for
//! the fraud emails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mfa_proxy::engine::{sign, signature_ok};

#[path = "../support/smtp_sink.rs"]
pub mod smtp_sink;
#[allow(unused_imports)]
pub use smtp_sink::SmtpSink;

pub const PROVIDER_KEY: &str = "provider-key-for-tests-0123456789";

/// What the simulated phone does for a user.
#[derive(Clone, Copy)]
pub enum Script {
    /// Answer with this callback body after this long. `{number}` in it is
    /// replaced by the delivery's number (push number matching).
    After(Duration, &'static str),
    /// Refuse the first delivery (HTTP 500), then play the script.
    FailOnce(Duration, &'static str),
    /// Refuse every delivery (HTTP 500).
    Fail,
    /// Take the delivery, never answer.
    Silent,
}

/// A provider: takes deliveries at POST /verify, checks their signature,
/// and answers each by its user's script.
pub struct ProviderSim {
    pub addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl ProviderSim {
    pub fn start(scripts: HashMap<&'static str, Script>) -> ProviderSim {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let seen = deliveries.clone();
        std::thread::spawn(move || {
            let mut refused: HashMap<String, usize> = HashMap::new();
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let Some((headers, body)) = read_request(&mut conn) else {
                    continue;
                };
                let sig = headers.get("x-mfa-signature").cloned().unwrap_or_default();
                if !signature_ok(PROVIDER_KEY.as_bytes(), &body, &sig) {
                    respond(&mut conn, "401 Unauthorized");
                    continue;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                let user = v["user"].as_str().unwrap_or_default().to_owned();
                seen.lock().expect("lock").push(v.clone());
                let answer = match scripts.get(user.as_str()).copied() {
                    Some(Script::Fail) => None,
                    Some(Script::FailOnce(d, reply)) => {
                        let n = refused.entry(user).or_default();
                        *n += 1;
                        (*n > 1).then_some(Some((d, reply)))
                    }
                    Some(Script::After(d, reply)) => Some(Some((d, reply))),
                    Some(Script::Silent) | None => Some(None),
                };
                let Some(answer) = answer else {
                    respond(&mut conn, "500 Oops");
                    continue;
                };
                respond(&mut conn, "202 Accepted");
                if let Some((d, reply)) = answer {
                    let url = v["callback_url"].as_str().expect("callback_url").to_owned();
                    let body = reply.replace("{number}", &v["number"].to_string());
                    std::thread::spawn(move || {
                        std::thread::sleep(d);
                        let sig = sign(PROVIDER_KEY.as_bytes(), body.as_bytes());
                        post(&url, &body, Some(&sig));
                    });
                }
            }
        });
        ProviderSim { addr, deliveries }
    }

    pub fn delivered(&self) -> Vec<serde_json::Value> {
        self.deliveries.lock().expect("lock").clone()
    }

    /// The deliveries for `user`.
    pub fn to(&self, user: &str) -> Vec<serde_json::Value> {
        self.delivered()
            .into_iter()
            .filter(|d| d["user"] == user)
            .collect()
    }

    /// Waits up to `limit` for the `n`th delivery to `user` (from 1).
    pub fn wait_for(&self, user: &str, n: usize, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(d) = self.to(user).get(n - 1) {
                return d.clone();
            }
            assert!(Instant::now() < deadline, "no delivery {n} to {user}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `[[provider]]` table for this simulator.
    pub fn config(&self, methods: &str) -> String {
        format!(
            "[[provider]]\nname = \"sim\"\ntype = \"webhook\"\nmethods = {methods}\n\
             url = \"http://{}/verify\"\nkey = \"{PROVIDER_KEY}\"\ntimeout = \"2s\"\nretries = 1\n",
            self.addr
        )
    }
}

/// One answer per connection: the simulator serves connections one at a
/// time, so a kept-alive connection would never be read again.
fn respond(conn: &mut TcpStream, status: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
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
pub fn http(method: &str, url: &str, body: &str, signature: Option<&str>) -> (u16, String) {
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

pub fn post(url: &str, body: &str, signature: Option<&str>) -> u16 {
    http("POST", url, body, signature).0
}

/// A signed callback.
pub fn post_signed(url: &str, body: &str) -> u16 {
    post(
        url,
        body,
        Some(&sign(PROVIDER_KEY.as_bytes(), body.as_bytes())),
    )
}
