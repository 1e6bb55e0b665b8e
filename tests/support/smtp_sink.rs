//! An SMTP server on 127.0.0.1 for the tests: it speaks enough of RFC 5321
//! for lettre (EHLO or HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET,
//! NOOP, QUIT; several messages a session) and keeps every message it
//! accepts. Recipients it is told to refuse get a 550, as a relay that
//! does not know them would answer.
//!
//! [`Mail`] decodes what a mail client would show: the subject (RFC 2047
//! encoded words) and the body (7bit, 8bit, quoted-printable or base64).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One message as the sink received it.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope: MAIL FROM's and RCPT TO's addresses.
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (CRLF line ends, dots unstuffed).
    pub data: String,
}

impl Mail {
    /// The envelope lines, then the message: what the fraud-mail tests
    /// search in.
    pub fn raw(&self) -> String {
        let mut s = format!("MAIL FROM:<{}>\n", self.from);
        for t in &self.to {
            s.push_str(&format!("RCPT TO:<{t}>\n"));
        }
        s.push_str(&self.data);
        s
    }

    fn split(&self) -> (&str, &str) {
        self.data.split_once("\r\n\r\n").unwrap_or((&self.data, ""))
    }

    /// A header's value, unfolded; the first of that name, any case.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.split();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            match &mut found {
                Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
                Some(_) => break,
                None => {
                    if let Some((n, v)) = line.split_once(':')
                        && n.eq_ignore_ascii_case(name)
                    {
                        found = Some(v.trim_start().to_owned());
                    }
                }
            }
        }
        found
    }

    /// The subject, its encoded words decoded.
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").unwrap_or_default())
    }

    /// The body, decoded, with LF line ends.
    pub fn body(&self) -> String {
        let (_, body) = self.split();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.trim() {
            "quoted-printable" => quoted_printable(body),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(body.replace("\r\n", ""))
                .expect("base64 body"),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8(bytes)
            .expect("a UTF-8 body")
            .replace("\r\n", "\n")
    }
}

/// `=XX` escapes and `=` soft line breaks (RFC 2045 §6.7).
fn quoted_printable(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 {
            let hex = std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); the
/// space between two of them is not part of the text.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let (before, word) = rest.split_at(start);
        let decoded = word[2..].splitn(3, '?').collect::<Vec<_>>();
        let end = decoded
            .get(2)
            .and_then(|t| t.find("?="))
            .filter(|_| decoded.len() == 3);
        let Some(end) = end else {
            out.push_str(rest);
            break;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let text = &decoded[2][..end];
        let bytes = if decoded[1].eq_ignore_ascii_case("b") {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 word")
        } else {
            quoted_printable(&text.replace('_', " "))
        };
        out.push_str(&String::from_utf8(bytes).expect("a UTF-8 word"));
        let consumed = start + 2 + decoded[0].len() + 1 + decoded[1].len() + 1 + end + 2;
        rest = &rest[consumed..];
        last_was_word = true;
    }
    out
}

/// An SMTP server that accepts every message (except to the recipients it
/// refuses) and keeps it.
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    pub sessions: Arc<AtomicUsize>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::refusing(&[])
    }

    /// A sink that answers 550 to RCPT TO these addresses.
    pub fn refusing(refused: &[&str]) -> SmtpSink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let sessions = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (mails.clone(), sessions.clone());
        let refused: Vec<String> = refused.iter().map(|r| r.to_ascii_lowercase()).collect();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (kept, refused) = (kept.clone(), refused.clone());
                std::thread::spawn(move || session(conn, &refused, &kept));
            }
        });
        SmtpSink {
            addr,
            mails,
            sessions,
        }
    }

    /// Waits up to `limit` for `n` messages; returns those that came.
    pub fn wait_mails(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.mails.lock().expect("lock").clone();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`SmtpSink::wait_mails`], each as its envelope lines and message.
    pub fn wait(&self, n: usize, limit: Duration) -> Vec<String> {
        self.wait_mails(n, limit).iter().map(Mail::raw).collect()
    }

    /// Every message so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

/// The address in `MAIL FROM:<a>` or `RCPT TO:<a>` (parameters after it
/// ignored).
fn path(arg: &str) -> String {
    let a = arg.trim();
    match (a.find('<'), a.find('>')) {
        (Some(s), Some(e)) if s < e => a[s + 1..e].to_owned(),
        _ => a.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

/// One SMTP session; each accepted message goes to `kept` at its final dot.
fn session(mut conn: TcpStream, refused: &[String], kept: &Mutex<Vec<Mail>>) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    conn.write_all(b"220 sink ESMTP\r\n").ok()?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return Some(());
        }
        let text = line.trim_end().to_owned();
        let upper = text.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink\r\n"
        } else if let Some(arg) = upper.strip_prefix("MAIL FROM:").map(|_| &text[10..]) {
            from = Some(path(arg));
            to.clear();
            b"250 OK\r\n"
        } else if let Some(arg) = upper.strip_prefix("RCPT TO:").map(|_| &text[8..]) {
            let rcpt = path(arg);
            if from.is_none() {
                b"503 MAIL first\r\n"
            } else if refused.contains(&rcpt.to_ascii_lowercase()) {
                b"550 no such mailbox\r\n"
            } else {
                to.push(rcpt);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                b"554 no valid recipients\r\n"
            } else {
                conn.write_all(b"354 go ahead\r\n").ok()?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).ok()? == 0 {
                        return Some(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                kept.lock().ok()?.push(Mail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 queued\r\n"
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            b"250 OK\r\n"
        } else if upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            conn.write_all(b"221 bye\r\n").ok()?;
            return Some(());
        } else {
            b"502 not implemented\r\n"
        };
        conn.write_all(reply).ok()?;
    }
}
