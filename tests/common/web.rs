//! A tiny HTTP/1.1 client for the portal's tests: one request a
//! connection, cookies and forms by hand, the answer's status, headers and
//! body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, headers (lower-case names), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The session cookie it sets, `name=value`.
    pub fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').expect("end")].to_owned()
    }
}

pub fn request(port: u16, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Answer {
    request_with(port, method, path, cookie, form, &[])
}

/// A request with `extra` headers (`name`, `value`), each sent as given.
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept-Language: en\r\n"
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(form);
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `mfa-proxy serve` of the tests, killed when dropped.
pub struct Serve(pub std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    /// Starts `serve` on `config`, its log to `log` (or nowhere), and waits
    /// (30 s at most) until its HTTP listener on `http_port` takes
    /// connections.
    pub fn start(config: &std::path::Path, log: Option<&std::path::Path>, http_port: u16) -> Serve {
        let stderr = match log {
            Some(path) => std::process::Stdio::from(std::fs::File::create(path).expect("log")),
            None => std::process::Stdio::null(),
        };
        let serve = Serve(
            std::process::Command::new(env!("CARGO_BIN_EXE_mfa-proxy"))
                .args(["serve", "--config"])
                .arg(config)
                .stderr(stderr)
                .spawn()
                .expect("serve"),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the portal did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }
}

/// A sign-in at the portal on `port` from a fresh visitor's page.
pub fn sign_in(port: u16, user: &str, password: &str) -> Answer {
    let page = request(port, "GET", "/portal/", None, "");
    let cookie = page.cookie().expect("cookie");
    request(
        port,
        "POST",
        "/portal/signin",
        Some(&cookie),
        &format!(
            "csrf={}&user={}&password={}",
            page.csrf(),
            enc(user),
            enc(password)
        ),
    )
}

/// The value of `sample` (a metric's name with its labels, as written) on
/// `/metrics` of the listener on `port`.
pub fn metric(port: u16, sample: &str) -> u64 {
    let page = request(port, "GET", "/metrics", None, "");
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in:\n{}", page.body))
}
