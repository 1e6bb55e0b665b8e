//! The portal in a real browser (headless Chromium through the harness of
//! tests/support/browser.rs) against the real `serve` on the shipped trial
//! configuration: an invited user opens the link, signs in with the
//! keyboard alone, enrolls an app by reading the key off the page,
//! activates it with a computed code, and then a RADIUS login through
//! radclient with the next code succeeds. A POST from another site and
//! one from another origin of this host without the form's token are
//! refused; the sign-in rate limit holds. A screenshot of each page is
//! kept in <target>/screenshots/enroll_in_a_browser_then_log_in_over_radius/.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use browser::{Browser, Key};
use common::web::Serve;
use common::{free_port, have, radclient, run_bin, text, workspace};
use mfa_proxy::config::Config;
use mfa_proxy::mfa::otp::{TotpParams, totp_code};
use mfa_proxy::store::Invitation;
use sha2::Digest;

const WAIT: Duration = Duration::from_secs(10);

fn unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Serves one page with a form that posts `fields` to `action`, on
/// `host`, from a thread; its URL.
fn attacker_page(host: &str, action: &str, fields: &str) -> String {
    let listener = TcpListener::bind((host, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let html = format!(
        "<!doctype html><html><head><title>elsewhere</title></head><body>\
         <form method=\"post\" action=\"{action}\">{fields}<button id=\"go\" type=\"submit\">go</button></form></body></html>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, &html);
        }
    });
    format!("http://{host}:{port}/")
}

fn answer(mut s: TcpStream, html: &str) {
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
        line.clear();
    }
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
}

#[test]
fn enroll_in_a_browser_then_log_in_over_radius() {
    if !have("radclient") {
        return;
    }
    let Some(b) = Browser::start_or_skip("enroll_in_a_browser_then_log_in_over_radius") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, http) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(workspace().join("proxy.toml")).expect("read");
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        shipped
            .replace("127.0.0.1:1812\"]", &format!("127.0.0.1:{auth}\"]"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}")),
    )
    .expect("write");
    let ok = |args: &[&str], stdin: Option<&str>| {
        let o = run_bin(dir.path(), args, stdin);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    };
    ok(&["init"], None);
    ok(
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    ok(
        &["user", "add", "bob", "--password-stdin"],
        Some("bob-pass\n"),
    );
    // An invitation, as `user invite` keeps it: the hash of its token.
    let token: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    {
        let config = Config::load(&path).expect("config");
        let store = mfa_proxy::store::open::open_existing(&config.store).expect("store");
        store
            .add_invitation(&Invitation {
                hash: sha2::Sha256::digest(token.as_bytes()).to_vec(),
                user: "alice".into(),
                created_at: unix() as i64,
                expires_at: unix() as i64 + 3600,
                used_at: None,
            })
            .expect("invitation");
    }
    let _serve = Serve::start(&path, None, http);
    let base = format!("http://127.0.0.1:{http}");

    // The invitation link: the sign-in page, the name filled in.
    b.goto(&format!("{base}/portal/invite/{token}"));
    assert!(b.source().contains("You were invited"), "{}", b.source());
    assert_eq!(b.find("#user").value(), "alice");
    b.screenshot("sign-in-invited");
    let cookie = b.cookie("mfa_portal").expect("session cookie");
    assert!(cookie.http_only, "HttpOnly");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));
    // The keyboard alone: Tab to the password, type it, Enter.
    b.tab_to("#password", 10);
    b.type_keys("alice-pass");
    b.press(Key::Enter);
    b.wait_for("form[action='/portal/app/new'] button", WAIT);
    assert!(b.source().contains("Set up a way to confirm your sign-ins"));
    b.screenshot("home-enrolling");

    // Enroll an app, reading the key off the page.
    b.find("form[action='/portal/app/new'] button").click();
    let secret = b.wait_for("#secret", WAIT).text();
    assert!(b.source().contains("<svg"), "the QR code");
    b.screenshot("app-qr-and-key");
    let key: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let seed = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &key).expect("base32");
    let p = TotpParams::default();
    b.find("#code").type_text(&totp_code(&p, &seed, unix()));
    b.find("form[action='/portal/app/activate'] button").click();
    b.wait_for(".notice", WAIT);
    assert!(
        b.source().contains("Your authenticator app is ready."),
        "{}",
        b.source()
    );
    b.screenshot("home-app-ready");

    // The invitation was used: the link is dead now.
    b.goto(&format!("{base}/portal/invite/{token}"));
    assert!(
        b.source().contains("no sign-in verification yet"),
        "{}",
        b.source()
    );
    b.screenshot("invitation-used");

    // A RADIUS login with the next code.
    let to: std::net::SocketAddr = format!("127.0.0.1:{auth}").parse().expect("addr");
    let next = totp_code(&p, &seed, unix() + 30);
    let out = text(&radclient(
        to,
        "auth",
        "testing123",
        &format!(
            "User-Name = alice\nUser-Password = \"alice-pass,{next}\"\nMessage-Authenticator = 0x00\n"
        ),
        &["-x", "-r", "1", "-t", "4"],
    ));
    assert!(out.contains("Received Access-Accept"), "{out}");

    // Signed in again (the invitation's session ended with the dead link):
    // the password, then the code page.
    b.goto(&format!("{base}/portal/"));
    b.find("#user").type_text("alice");
    b.find("#password").type_text("alice-pass");
    b.find("form[action='/portal/signin'] button").click();
    b.wait_for("#code", WAIT);
    b.screenshot("code");
    b.find("#code").type_text("000001");
    b.find("form[action='/portal/code'] button").click();
    b.wait_for(".error", WAIT);
    b.screenshot("code-wrong");

    // A POST from another site: no cookie (SameSite=Strict), no token.
    let elsewhere = attacker_page(
        "127.0.0.2",
        &format!("{base}/portal/pin"),
        "<input name=\"pin\" value=\"1234\"><input name=\"pin2\" value=\"1234\">",
    );
    b.goto(&elsewhere);
    b.find("#go").click();
    b.wait_for(".error", WAIT);
    assert!(
        b.source().contains("came from another site"),
        "{}",
        b.source()
    );
    b.screenshot("cross-site-post-refused");
    // From another origin of this host the cookie comes along, and the
    // missing token refuses it.
    let other_origin = attacker_page(
        "127.0.0.1",
        &format!("{base}/portal/signout"),
        "<input name=\"csrf\" value=\"forged\">",
    );
    b.goto(&other_origin);
    b.find("#go").click();
    b.wait_for(".error", WAIT);
    assert!(b.source().contains("came from another site"));

    // The sign-in rate limit: five wrong passwords for bob, then the right
    // one is refused too.
    for _ in 0..5 {
        b.goto(&format!("{base}/portal/"));
        b.find("#user").type_text("bob");
        b.find("#password").type_text("wrong");
        b.find("form[action='/portal/signin'] button").click();
        b.wait_for(".error", WAIT);
    }
    b.goto(&format!("{base}/portal/"));
    b.find("#user").type_text("bob");
    b.find("#password").type_text("bob-pass");
    b.find("form[action='/portal/signin'] button").click();
    b.wait_for(".error", WAIT);
    assert!(
        b.source().contains("Too many failed sign-ins"),
        "{}",
        b.source()
    );
    b.screenshot("rate-limited");

    let shots = std::fs::read_dir(b.screenshot_dir())
        .expect("screenshots")
        .count();
    assert!(shots >= 8, "a screenshot of each page: {shots}");
}
